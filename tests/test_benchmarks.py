"""Every benchmark script runs end to end on tiny shapes and writes the JSON it promises."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
HAS_FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").exists()


@pytest.mark.slow
def test_sqrtm_benchmark_quick_run_writes_rows(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "sqrtm.py"),
            "--quick",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads((tmp_path / "sqrtm-cpu.json").read_text())
    methods = {row["method"] for row in result["rows"]}
    assert {
        "NS autograd",
        "NS memory-efficient",
        "eigh",
        "covariance",
        "centring matrix",
    } <= methods
    assert all(row["fwd_bwd_ms"] > 0 for row in result["rows"])
    assert result["machine"]["torch"]
    assert "| NS memory-efficient |" in out.stdout


@pytest.mark.slow
def test_blocks_benchmark_quick_run_measures_every_variant_against_vanilla(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "blocks.py"), "--quick", "--device", "cpu",
         "--out", str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    rows = json.loads((tmp_path / "blocks-quick-cpu.json").read_text())["rows"]
    by_variant = {row["variant"]: row for row in rows}
    assert set(by_variant) == {"vanilla", "SE", "CBAM", "GSoP channel (Net1)", "GSoP position",
                               "iSQRT-COV head", "GSoP-Net2"}
    assert by_variant["vanilla"]["time_ratio"] == 1.0
    assert all(row["step_ms"] > 0 and row["saved_mb"] > 0 for row in rows)
    # A block adds activations to save; the ratio is measured, not assumed.
    assert by_variant["GSoP channel (Net1)"]["saved_ratio"] > 1.0
    assert "| GSoP channel (Net1) |" in out.stdout


@pytest.mark.slow
def test_explorer_benchmark_quick_run_times_every_bundled_checkpoint_and_the_start(tmp_path):
    from gsoplib.pretrained import list_pretrained

    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "explorer.py"), "--quick", "--out", str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    rows = json.loads((tmp_path / "explorer-cpu.json").read_text())["rows"]
    uploads = {row["input"]: row for row in rows if row["step"] == "upload to all views"}
    assert set(uploads) == {f"phone JPEG, {name}" for name in list_pretrained()}
    # the prediction and the attributions at least, plus every block's figures
    assert all(row["figures"] >= 2 and row["ms"] > 0 for row in uploads.values())
    assert uploads["phone JPEG, fmnist_small_gsop1"]["figures"] > 2
    # both paths timed with and without the shared decode (which is faster is the benchmark's
    # finding, not a test's: a busy machine may reorder two close timings)
    assert all(row["views_ms"] > 0 and row["views_png_ms"] > 0 for row in uploads.values())
    steps = {row["step"]: row["ms"] for row in rows}
    assert steps["app ready"] == pytest.approx(steps["server ready"] + steps["first script run"])
    assert "| app ready |" in out.stdout


@pytest.mark.skipif(not HAS_FMNIST, reason="needs Debian's dataset-fashion-mnist")
def test_gate_benchmark_quick_run_diagnoses_each_variant(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gate.py"), "--quick", "--device", "cpu",
         "--only", "release", "live", "--out", str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    rows = json.loads((tmp_path / "gate-cpu.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["release", "live"]
    for row in rows:
        assert row["verdict"].startswith("The gate ") and 0 <= row["test_top1"] <= 100
        assert sum(row["diagnostics"]["image_share"]) == pytest.approx(4)
        assert row["degenerate"] == bool(row["diagnostics"]["problems"])
    assert "| release |" in out.stdout and "| live |" in out.stdout


def test_gate_benchmark_saturation_table_on_the_second_order_set(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gate.py"), "--quick", "--device", "cpu",
         "--table", "saturation", "--dataset", "second_order", "--only", "live", "cosine_s4",
         "--out", str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    result = json.loads((tmp_path / "gate-saturation-cpu.json").read_text())
    assert result["machine"]["dataset"] == "second_order"
    assert [r["variant"] for r in result["summary"]] == ["live", "cosine_s4"]
    for row in result["rows"]:
        assert 1 <= row["effective_components"] <= 4 and row["logit_span"] >= 0
    cosine = result["rows"][1]
    assert cosine["head_kwargs"] == {"alpha": 100.0, "dropout": 0.2, "gate": "mixing",
                                     "gate_logit_scale": 4.0}  # pinned: as measured
    assert cosine["logit_span"] <= 2 * 4.0  # the cosine router's bound
    assert "| cosine_s4 |" in out.stdout
    bad = subprocess.run([sys.executable, str(BENCHMARKS / "gate.py"), "--only", "cosine_s4"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown variant 'cosine_s4' of table 'collapse'" in bad.stderr


def test_fig3_benchmark_quick_run_writes_the_grid_and_the_figure(tmp_path):
    figure = tmp_path / "fig3.png"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "fig3.py"), "--quick", "--device", "cpu",
         "--out", str(tmp_path), "--figure", str(figure)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    result = json.loads((tmp_path / "fig3-cpu.json").read_text())
    assert [(r["N"], r["K"]) for r in result["summary"]] == [(4, 1), (4, 2)]
    one, two = result["rows"]
    assert one["effective_components"] == 1.0  # K = 1: one weight of 1
    assert 1.0 < two["effective_components"] <= 2.0
    assert figure.stat().st_size > 10_000


def test_probes_benchmark_quick_run_reads_correlations_from_the_covariance(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "probes.py"), "--quick", "--out", str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    rows = json.loads((tmp_path / "probes-cpu.json").read_text())["rows"]
    cell = {(r["backbone"], r["pooling"]): r for r in rows}
    assert {pooling for _, pooling in cell} == {"gap", "covariance", "root"}
    # on the second-order set the image's own channels: the mean is blind, the covariance not
    raw = "none: the image's channels"
    assert cell[(raw, "gap")]["test_top1"] < 30 < 60 < cell[(raw, "covariance")]["test_top1"]
    assert cell[(raw, "covariance")]["features"] == 6 and "| second_order |" in out.stdout


@pytest.mark.skipif(not HAS_FMNIST, reason="needs Debian's dataset-fashion-mnist")
def test_balance_benchmark_quick_run_writes_usage_and_the_figure(tmp_path):
    figure = tmp_path / "balance.png"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "balance.py"), "--quick", "--device", "cpu",
         "--gates", "live", "--out", str(tmp_path), "--figure", str(figure)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    result = json.loads((tmp_path / "balance-cpu.json").read_text())
    assert [(r["gate"], r["alpha"]) for r in result["rows"]] == [("live", 0.0), ("live", 100.0)]
    for row in result["rows"]:
        share = row["image_share_sorted"]
        assert len(share) == 16 and share == sorted(share, reverse=True)
        assert sum(share) == pytest.approx(4)
    assert [s["alpha"] for s in result["summary"]] == [0.0, 100.0]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_committed_balance_results_show_what_the_readme_says():
    """GM-SOP Fig. 2 as measured (benchmarks/balance.py), the README's reading of it: without the
    balance loss the release's gate trains a few components; with it its training usage is even
    but its evaluation choice is one set (a gate that sees nothing); the live gate's usage is
    evener with the loss than without, and its choice carries information about the class."""
    result = json.loads((BENCHMARKS / "results" / "balance-cpu.json").read_text())
    summary = {(s["gate"], s["alpha"]): s for s in result["summary"]}
    assert all(s["seeds"] == 3 for s in summary.values())
    release_off, release_on = summary[("release", 0.0)], summary[("release", 100.0)]
    assert release_off["train_busy"] <= 8 and release_on["train_busy"] == 16
    assert release_on["train_cv"] < 0.1 and release_on["top_set_share"] > 90
    live_off, live_on = summary[("live", 0.0)], summary[("live", 100.0)]
    assert live_on["train_cv"] < live_off["train_cv"]
    assert min(live_on["busy"], live_off["busy"]) >= 12
    assert live_on["mutual_information"] > 0.5 * math.log2(16 / 4)


def test_compare_benchmark_quick_run_names_its_results_file(tmp_path):
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "compare.py"), "--quick", "--device", "cpu",
         "--datasets", "second_order", "--models", "small_vanilla", "small_gmsop",
         "--name", "compare-quick", "--out", str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    result = json.loads((tmp_path / "compare-quick-cpu.json").read_text())
    assert [r["model"] for r in result["rows"]] == ["small_vanilla", "small_gmsop"]
    assert all(0 <= r["top1_mean"] <= 100 and r["params"] > 0 for r in result["rows"])
    assert result["machine"]["seeds"] == 1


def _compare_module():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import compare
    finally:
        sys.path.remove(str(BENCHMARKS))
    return compare


def test_a_claim_s_verdict_reads_the_ordering_and_the_seed_noise():
    compare = _compare_module()
    claim = compare.CLAIMS["gsop_table56"]  # vanilla < SE < Net1 < Net2
    assert compare.claim_verdict(claim, [90, 91, 92, 93], [0.1] * 4) == "holds"
    assert compare.claim_verdict(claim, [90, 91, 92, 93], [2.0] * 4) == "holds within seed noise"
    assert compare.claim_verdict(claim, [93, 91, 92, 90], [0.1] * 4) == (
        "does not hold at this budget")
    assert compare.claim_verdict(claim, [91, 90.5, 92, 93], [1.0] * 4) == (
        "does not hold at this budget (differences within seed noise)")
    fusion = compare.CLAIMS["gsop_table4b"]  # no fusion beats the channel block
    assert compare.claim_verdict(fusion, [95, 94, 93, 94.5, 90], [0.1] * 5) == "holds"
    assert compare.claim_verdict(fusion, [95, 94, 97, 94.5, 90], [0.1] * 5).startswith("does not")


def test_claims_run_resume_and_judge_only_from_three_seeds(tmp_path):
    args = [sys.executable, str(BENCHMARKS / "compare.py"), "--claim", "gsop_table4a",
            "--quick", "--device", "cpu", "--out", str(tmp_path)]
    first = subprocess.run(args, check=True, capture_output=True, text=True, timeout=300)
    result = json.loads((tmp_path / "claims-cpu.json").read_text())
    assert [r["variant"] for r in result["rows"]] == [
        "GSoP-Net1, c = 8", "GSoP-Net1, c = 32", "GSoP-Net1, c = 16"]  # worst to best (paper)
    assert [r["model_kwargs"]["block_kwargs"]["rd_channels"] for r in result["rows"]] == [8, 32, 16]
    [row] = [s for s in result["summary"] if s["claim"] == "gsop_table4a"]
    assert row["verdict"] == "not judged: 1 seed(s), a verdict needs 3"
    assert row["command"] == "python benchmarks/compare.py --claim gsop_table4a"
    assert first.stdout.count("gsop_table4a / ") == 3  # one line per run trained
    again = subprocess.run(args, check=True, capture_output=True, text=True, timeout=300)
    assert "gsop_table4a / " not in again.stdout  # nothing retrained: resumed
    assert len(json.loads((tmp_path / "claims-cpu.json").read_text())["rows"]) == 3


def test_sweep_quick_run_writes_its_cells_and_the_figure(tmp_path):
    figure = tmp_path / "sweep.png"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "compare.py"), "--sweep", "--quick", "--device", "cpu",
         "--out", str(tmp_path), "--figure", str(figure)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    result = json.loads((tmp_path / "sweep-cpu.json").read_text())
    cells = {(r["backbone"], r["pooling"]) for r in result["summary"]}
    assert len(cells) == 2 * len(_compare_module().POOLINGS) == 2 * 7
    assert figure.stat().st_size > 10_000
    compare = _compare_module()
    kwargs = compare.sweep_kwargs((1,), (8,), "iSQRT-COV head")
    assert kwargs["blocks"] == "√" and kwargs["head_kwargs"]["rd_channels"] is None
    assert "feature_scale" not in kwargs["head_kwargs"]  # the paper's features
    scaled = compare.sweep_kwargs((1,), (8,), "iSQRT-COV head x4")
    assert scaled["head_kwargs"]["feature_scale"] == 4
    assert compare.sweep_kwargs((1, 1), (8, 16), "GSoP blocks + GAP")["blocks"] == "C,C"
    control = compare.sweep_kwargs((1,), (8,), "GAP + MLP")  # the control: 36 first-order inputs
    assert control["blocks"] == "-" and control["head_kwargs"] == {"hidden": 36}
    assert compare.sweep_kwargs((1,), (8,), "GAP x4")["head_kwargs"] == {"feature_scale": 4.0}


def test_curves_quick_run_logs_steps_and_epochs_per_model(tmp_path):
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "curves.py"), "--quick", "--device", "cpu",
         "--models", "small_vanilla", "--log-every", "2", "--out", str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    [row] = json.loads((tmp_path / "curves-cpu.json").read_text())["rows"]
    assert row["model"] == "small_vanilla" and row["steps_per_epoch"] == 4
    assert [s["step"] for s in row["steps"]] == [2, 4]
    assert len(row["epochs"]) == 1 and 0 <= row["epochs"][0]["test_top1"] <= 1


def test_committed_component_results_put_gm_sop_within_two_points_of_vanilla():
    """GM-SOP issue, item 4, as measured (benchmarks/gate.py --table component and the 5-seed
    vanilla runs, one torch thread): the default without dropout has the highest mean (its lead
    over dropout 0.2 is within seed noise) and trails vanilla by under 2 points over five seeds;
    the zoo's small_gmsop is that default."""
    from gsoplib.models import create_model

    component = json.loads((BENCHMARKS / "results" / "gate-component-cpu.json").read_text())
    vanilla = json.loads((BENCHMARKS / "results" / "vanilla5-cpu.json").read_text())
    assert component["machine"]["torch_threads"] == vanilla["machine"]["torch_threads"] == 1
    rows = {s["variant"]: s for s in component["summary"]}
    default = rows["no_dropout"]
    assert default["seeds"] == [0, 1, 2, 3, 4] and default["degenerate_runs"] == 0
    assert default["test_top1"] > max(s["test_top1"] for v, s in rows.items() if v != "no_dropout")
    assert default["effective_components"] > 3.5  # still a mixture of K = 4
    (runs,) = [r["top1_runs"] for r in vanilla["rows"] if r["model"] == "small_vanilla"]
    assert len(runs) == 5 and sum(runs) / 5 - default["test_top1"] < 2.0
    measured = next(r for r in component["rows"] if r["variant"] == "no_dropout")["head_kwargs"]
    head = create_model("small_gmsop", num_classes=8, in_chans=3).head
    built = {"gate": head.gate.form, "alpha": head.alpha, "dropout": head.classifier[1].p}
    assert built == measured, (built, measured)


def test_the_readme_and_docs_tables_are_the_committed_results():
    """The claims and sweep tables in README.md and docs/benchmarks.md are what
    ``compare.py --markdown`` prints from the committed JSON: a rerun that changes a number or a
    verdict fails here until the pages are regenerated."""
    compare = _compare_module()
    results = BENCHMARKS / "results"
    claims = compare.claims_markdown(json.loads((results / "claims-cpu.json").read_text())["rows"])
    sweep = compare.sweep_markdown(compare.sweep_summary(
        json.loads((results / "sweep-cpu.json").read_text())["rows"]))
    assert claims.count("\n| ") == len(compare.CLAIMS)  # one row per claim, none dropped
    assert "not judged" not in claims and "not run yet" not in claims
    fix = "regenerate with python benchmarks/compare.py --markdown --write"
    for page in (BENCHMARKS.parent / "README.md", BENCHMARKS.parent / "docs" / "benchmarks.md"):
        text = page.read_text()
        assert claims in text, f"{page.name}: {fix}"
        assert sweep in text, f"{page.name}: {fix}"
