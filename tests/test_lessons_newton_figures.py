"""Notebook 02's figures added after its fifth review: a trained head's spectra under the root,
the N = 3 layer and the logarithm (gsoplib.viz.newton.head_spectrum), the committed eigh
against Newton-Schulz timings (sqrtm_timings), and a reference row from another JSON beside the
accuracy-against-N curve (accuracy_against_iterations(extra_references=...))."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gsoplib.ops import covariance
from gsoplib.ops.iterations import newton_schulz_polynomial
from gsoplib.viz import newton

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _covs(channels=12, samples=8, batch=5):
    torch.manual_seed(0)
    return covariance(torch.randn(batch, channels, samples, dtype=torch.float64))


def test_head_spectrum_counts_zeros_and_maps_each_eigenvalue():
    covs = _covs()                              # 8 centred samples of 12 channels: rank 7
    s = newton.head_spectrum_summary(covs, iters=3)
    assert s["zeros"].tolist() == [12 - 7] * 5
    lam = s["eigenvalues"]
    assert (lam[:, :-1] >= lam[:, 1:]).all(), "largest first"
    torch.testing.assert_close(lam, torch.linalg.eigvalsh(covs).flip(-1))
    torch.testing.assert_close(s["root"], lam.clamp(min=0).sqrt())
    trace = lam.clamp(min=0).sum(-1, keepdim=True)
    layer = trace.sqrt() * newton_schulz_polynomial(lam.clamp(min=0) / trace, 3)
    torch.testing.assert_close(s["layer"], layer)
    assert s["log"][s["zero_mask"]].max().item() == pytest.approx(math.log(1e-6))
    # more iterations: the layer comes closer to the root on every non-zero eigenvalue
    s10 = newton.head_spectrum_summary(covs, iters=10)
    gap3 = (s["root"] - s["layer"]).abs()[~s["zero_mask"]]
    gap10 = (s10["root"] - s10["layer"]).abs()[~s["zero_mask"]]
    assert (gap10 <= gap3 + 1e-12).all() and gap10.max() < gap3.max()


def test_head_spectrum_titles_state_the_zeros_and_follow_the_input():
    covs = _covs()
    fig = newton.head_spectrum(covs)
    left, right = fig.axes[0].get_title(), fig.axes[1].get_title()
    assert "5 zero per covariance" in left and "of 12 channels" in left
    assert "log sends them to -13.8" in right and "the root to at most" in right
    summary = newton.head_spectrum_summary(covs)
    largest = float(summary["root"][summary["zero_mask"]].max())
    assert f"the root to at most {largest:.2g}" in right   # two significant digits, as notebook 02
    assert fig.axes[0].get_ylabel() and fig.axes[1].get_ylabel() and fig.axes[2].get_ylabel()
    wider = newton.head_spectrum(_covs(samples=10))   # rank 9: 3 zeros
    assert "3 zero per covariance" in wider.axes[0].get_title()
    assert newton.head_spectrum(covs, log_eps=1e-3).axes[1].get_title() != right


def test_sqrtm_timings_read_the_committed_json():
    results = json.load(open(RESULTS / "sqrtm-cpu.json"))
    s = newton.sqrtm_timing_summary(results)
    assert s["iters"] == 5
    assert s[128, 256]["NS autograd"] == pytest.approx(995.1, abs=0.1)
    assert s[128, 256]["eigh"] == pytest.approx(480.5, abs=0.1)
    assert s[32, 64]["NS autograd"] == pytest.approx(4.2, abs=0.1)
    assert s[32, 64]["eigh"] == pytest.approx(5.8, abs=0.1)
    fig = newton.sqrtm_timings(results)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["B = 32: eigh faster at n = 256; n = 256: NS 1.6x eigh's time",
                      "B = 128: eigh faster at n = 128, 256; n = 256: NS 2.1x eigh's time"]
    assert "Intel(R) Xeon(R)" in fig.axes[0].get_xlabel()
    assert len(fig.axes[0].get_legend().get_texts()) == 3


def test_sqrtm_timings_draw_a_second_run_at_another_n():
    five, three = (json.load(open(RESULTS / f)) for f in ("sqrtm-cpu.json", "sqrtm-n3-cpu.json"))
    assert newton.sqrtm_timing_summary(three)["iters"] == 3
    fig = newton.sqrtm_timings(five, second=three)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "B = 32, NS time / eigh's at n = 256: N = 5 1.6x, N = 3 0.8x\n"
        "eigh faster at n = 256 (N = 5); none (N = 3)",
        "B = 128, NS time / eigh's at n = 256: N = 5 2.1x, N = 3 1.2x\n"
        "eigh faster at n = 128, 256 (N = 5); 256 (N = 3)"]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["eigh (run with N = 5)", "NS autograd, N = 5", "NS memory-efficient, N = 5",
                      "eigh (run with N = 3)", "NS autograd, N = 3", "NS memory-efficient, N = 3"]
    assert fig.axes[0].get_lines()[4].get_linestyle() == ":"
    with pytest.raises(ValueError, match="another iteration count"):
        newton.sqrtm_timings(five, second=five)


def test_sqrtm_timings_follow_the_numbers():
    rows = [{"B": 4, "n": n, "method": m, "iters": 3, "fwd_bwd_ms": ms}
            for n, m, ms in [(8, "eigh", 2.0), (8, "NS autograd", 1.0),
                             (8, "NS memory-efficient", 1.5), (16, "eigh", 3.0),
                             (16, "NS autograd", 9.0), (16, "NS memory-efficient", 12.0)]]
    rows.append({"B": 4, "C": 8, "M": 9, "method": "covariance", "fwd_bwd_ms": 1.0})
    fig = newton.sqrtm_timings({"machine": {"device": "cpu", "cpu": "x", "torch_threads": 1},
                                "rows": rows})
    assert fig.axes[0].get_title() == "B = 4: eigh faster at n = 16; n = 16: NS 3.0x eigh's time"
    with pytest.raises(ValueError, match="one Newton-Schulz iteration count"):
        newton.sqrtm_timing_summary({"rows": rows + [{**rows[0], "iters": 5}]})


def test_a_reference_row_from_another_json_is_drawn_as_a_band():
    results = json.load(open(RESULTS / "heads-cpu.json"))
    gap = newton.IterationsAccuracy(0, 98.45, 0.41, (98.0, 98.5, 98.85), "elsewhere (GAP)")
    plain = newton.accuracy_against_iterations(results, tables=("isqrt_iters",))
    drawn = newton.accuracy_against_iterations(results, tables=("isqrt_iters",),
                                               extra_references={"isqrt_iters": [gap]})
    labels = [t.get_text() for t in drawn.axes[0].get_legend().get_texts()]
    assert "elsewhere (GAP): 98.45 ± 0.41 (band: ± std)" in labels
    assert drawn.axes[0].get_title() == plain.axes[0].get_title() + "; GAP mean above every N"
    below = gap._replace(mean=90.0)
    lower = newton.accuracy_against_iterations(results, tables=("isqrt_iters",),
                                               extra_references={"isqrt_iters": [below]})
    assert lower.axes[0].get_title() == plain.axes[0].get_title()


def test_a_subtitle_replaces_the_titles_second_line_of_its_table_only():
    results = json.load(open(RESULTS / "heads-cpu.json"))
    plain = newton.accuracy_against_iterations(results)
    told = newton.accuracy_against_iterations(results, subtitles={"isqrt_iters": "no gap resolved"})
    assert told.axes[0].get_title() == "isqrt_iters\nno gap resolved" != plain.axes[0].get_title()
    assert told.axes[1].get_title() == plain.axes[1].get_title()


def _dense(line, ax):
    """The line's points in display space, 50 per segment, and half its marker size (1 if none)."""
    xy = ax.transData.transform(line.get_xydata())
    if len(xy) > 1:
        xy = np.concatenate([np.linspace(a, b, 50) for a, b in zip(xy[:-1], xy[1:])])
    marked = line.get_marker() not in (None, "None", "")
    return xy, line.get_markersize() / 2 if marked else 1


def _text_clear_of_curves(fig):
    """(annotation, what it overlaps) pairs after drawing: a curve (every drawn line,
    interpolated densely in display space, markers included), another annotation, the legend,
    or the outside of its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    hits = []
    for ax in fig.axes:
        boxes = [(t, t.get_window_extent(renderer)) for t in ax.texts]
        legend = ax.get_legend()
        inside = ax.get_window_extent(renderer)
        for i, (t, box) in enumerate(boxes):
            for line in ax.get_lines():
                xy, pad = _dense(line, ax)
                if any(box.x0 - pad <= x <= box.x1 + pad and box.y0 - pad <= y <= box.y1 + pad
                       for x, y in xy):
                    hits.append((t.get_text(), line.get_label()))
            hits += [(t.get_text(), u.get_text()) for u, other in boxes[i + 1:]
                     if box.overlaps(other)]
            if legend is not None and box.overlaps(legend.get_window_extent(renderer)):
                hits.append((t.get_text(), "legend"))
            if not (inside.x0 <= box.x0 and box.x1 <= inside.x1
                    and inside.y0 <= box.y0 and box.y1 <= inside.y1):
                hits.append((t.get_text(), "outside the axes"))
    return hits


def test_null_gradient_panels_labels_clear_of_the_curves():
    fig = newton.null_gradient_panels()
    assert _text_clear_of_curves(fig) == []
    assert [t.get_text() for t in fig.axes[0].texts] == ["N = 3", "N = 5", "N = 10"]
    assert fig.axes[1].texts[0].get_text() == "N = 3: eps = 0.066"
    assert fig.axes[0].get_title() and fig.axes[1].get_title() and fig.axes[0].get_xlabel()
    low, high = fig.axes[1].get_xlim()
    ticks = [t for t in fig.axes[1].get_xticks() if low <= t <= high]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks   # N: whole numbers
    # the check itself can fail: the library's figure, labels at their old offsets, overlaps
    from gsoplib.viz.lessons_sqrtm_gradient import null_gradient_figure
    assert _text_clear_of_curves(null_gradient_figure()) != []
