"""gsoplib.viz.sweep's titles: the optional title arguments (defaults unchanged) and the two
functions that state a panel's finding, sweep_finding and probe_finding."""

from __future__ import annotations

import pytest

from gsoplib.viz.sweep import probe_figure, probe_finding, sweep_figure, sweep_finding, sweep_view

BACKBONES = ["small", "large"]
# mean, std per (backbone, pooling): the head leads GAP beyond noise on the small backbone only,
# the blocks trail it beyond noise on both.
SCORES = {("small", "GAP"): (60.0, 0.5), ("small", "iSQRT-COV head"): (70.0, 1.0),
          ("small", "GSoP blocks + GAP"): (58.0, 0.5),
          ("large", "GAP"): (90.0, 0.5), ("large", "iSQRT-COV head"): (90.4, 0.5),
          ("large", "GSoP blocks + GAP"): (88.0, 0.5)}
ROWS = [{"dataset": "d", "backbone": b, "pooling": p, "seeds": 3, "test_top1": mean,
         "test_top1_std": std, "runs": [mean - std, mean, mean + std], "params": 1}
        for (b, p), (mean, std) in SCORES.items()]


def test_sweep_finding_counts_leads_beyond_the_larger_std():
    assert sweep_finding(ROWS, BACKBONES, "d") == (
        "d: iSQRT-COV head leads GAP\nbeyond seed noise at 1 of 2 sizes (+10.0 points);\n"
        "GSoP blocks + GAP trails it at 2 of 2 (-2.0, -2.0)")
    assert sweep_finding(ROWS, BACKBONES, "d", ["GSoP blocks + GAP"]) == (
        "d: no pooling leads GAP beyond seed noise at any size;\n"
        "GSoP blocks + GAP trails it at 2 of 2 (-2.0, -2.0)")
    # a lead of 0.4 with a std of 0.5 is not one; 10.0 with a std of 1.0 is
    shifted = [{**r, "test_top1_std": 11.0} if r["pooling"] == "iSQRT-COV head" else r
               for r in ROWS]
    assert sweep_finding(shifted, BACKBONES, "d", ["iSQRT-COV head"]) == (
        "d: no pooling leads GAP beyond seed noise at any size")
    with pytest.raises(ValueError, match="needs GAP and another pooling"):
        sweep_finding(ROWS, BACKBONES, "d", ["GAP"])


def test_sweep_finding_by_welch_counts_only_p_below_005():
    """test="welch": a lead counts at Welch's two-sided p < 0.05 over the rows' seeds; a lead of
    1.5 over stds 1.0 and 0.5 passes the std rule (t = 2.3, p ~ 0.12) and not the test."""
    assert sweep_finding(ROWS, BACKBONES, "d", test="welch") == (
        "d: iSQRT-COV head leads GAP\nat p < 0.05 (Welch) at 1 of 2 sizes (+10.0 points);\n"
        "GSoP blocks + GAP trails it at 2 of 2 (-2.0, -2.0)")
    near = [{**r, "test_top1": 61.5, "runs": [60.5, 61.5, 62.5]}
            if (r["backbone"], r["pooling"]) == ("small", "iSQRT-COV head") else r for r in ROWS]
    assert sweep_finding(near, BACKBONES, "d", ["iSQRT-COV head"]).startswith(
        "d: iSQRT-COV head leads GAP\nbeyond seed noise at 1 of 2 sizes (+1.5 points)")
    assert sweep_finding(near, BACKBONES, "d", ["iSQRT-COV head"], test="welch") == (
        "d: no pooling leads GAP at p < 0.05 (Welch) at any size")
    with pytest.raises(ValueError, match="test must be"):
        sweep_finding(ROWS, BACKBONES, "d", test="t")


def test_sweep_finding_adds_the_leads_that_survive_a_correction():
    """adjusted: a corrected p per (backbone, pooling); the title counts the leading pooling's
    counted leads whose adjusted p is below 0.05, and says over which family."""
    plain = sweep_finding(ROWS, BACKBONES, "d", test="welch")
    kept = sweep_finding(ROWS, BACKBONES, "d", test="welch",
                         adjusted={("small", "iSQRT-COV head"): 0.01}, family="the 2")
    assert kept == plain.replace(" points);", " points),\n1 of 2 after BH over the 2;")
    lost = sweep_finding(ROWS, BACKBONES, "d", test="welch",
                         adjusted={("small", "iSQRT-COV head"): 0.2})
    assert ",\n0 of 2 after BH;" in lost
    # a small adjusted p where the lead did not count adds nothing
    assert ",\n0 of 2 after BH;" in sweep_finding(ROWS, BACKBONES, "d", test="welch",
                                                  adjusted={("large", "iSQRT-COV head"): 0.01})


def test_titles_are_optional_and_the_defaults_stay():
    assert sweep_figure(ROWS, BACKBONES).axes[0].get_title() == "d: 3 seeds per point"
    named = sweep_figure(ROWS, BACKBONES, titles={"d": sweep_finding(ROWS, BACKBONES, "d")})
    assert named.axes[0].get_title().startswith("d: iSQRT-COV head leads GAP")
    view = sweep_view(ROWS, BACKBONES, "d", "small")
    assert view.axes[0].get_title() == "d: accuracy against backbone size"
    assert sweep_view(ROWS, BACKBONES, "d", "small", title="t").axes[0].get_title() == "t"
    assert view.axes[1].get_title() == "small: iSQRT-COV head +10.0 over GAP (largest std 1.0)"


def test_probe_finding_reads_the_better_second_order_pooling_against_gap():
    rows = [{"dataset": "d", "classes": 8, "backbone": b, "pooling": p, "per_class": 5,
             "seeds": 3, "test_top1": value, "test_top1_std": 1.0}
            for b, scores in (("none", {"gap": 13.0, "covariance": 80.0, "root": 82.5}),
                              ("trained", {"gap": 99.5, "covariance": 99.0, "root": 99.25}))
            for p, value in scores.items()]
    finding = probe_finding(rows, "d", 5)
    assert finding == ("d, 5 labels a class: the better of covariance and root minus GAP,\n"
                       "backbone by backbone (left to right): +69.5, -0.2 points")
    assert probe_figure(rows, "d", 5).axes[0].get_title() == (
        "d: linear probes on frozen features, 5 labels a class, 3 draws")
    assert probe_figure(rows, "d", 5, title=finding).axes[0].get_title() == finding
    with pytest.raises(ValueError, match="no probe rows"):
        probe_finding(rows, "d", 100)


def test_probe_figure_differences_panel_shows_the_paired_gaps():
    """differences=True: a right panel with, per backbone, the mean and std over the draws of
    each second-order pooling's top-1 minus GAP's on the same draw; off by default."""
    runs = {"gap": [80.0, 82.0, 84.0], "covariance": [79.0, 80.0, 84.0], "root": [81.0, 83.0, 85.0]}
    rows = [{"dataset": "d", "classes": 10, "backbone": "b", "pooling": p, "per_class": 5,
             "seeds": 3, "test_top1": sum(r) / 3, "test_top1_std": 1.0, "runs": r}
            for p, r in runs.items()]
    assert len(probe_figure(rows, "d", 5).axes) == 1
    fig = probe_figure(rows, "d", 5, differences=True)
    right = fig.axes[1]
    assert [p.get_height() for p in right.patches] == pytest.approx([-1.0, 1.0])
    # covariance - gap per draw: -1, -2, 0 (std 1); root - gap: 1, 1, 1 (std 0)
    half = [(s[1][1] - s[0][1]) / 2 for s in right.collections[0].get_segments()]
    assert half == pytest.approx([1.0]) and right.get_title().startswith("paired by draw")
