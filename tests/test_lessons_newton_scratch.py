"""Notebook 02's measured accuracy against iSQRT-COV's N: the rows it reads from a benchmark
JSON, the "within one standard deviation" rule its figure titles state, and the committed file
it loads (benchmarks/results/heads-cpu.json)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from gsoplib.viz import newton

HEADS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "heads-cpu.json"


def _row(table, variant, runs, model="m", **head_kwargs):
    return {"table": table, "variant": variant, "model": model,
            "model_kwargs": {"head_kwargs": {"feature_scale": 1.0, **head_kwargs}},
            "seeds": len(runs), "test_top1": statistics.mean(runs),
            "test_top1_std": statistics.stdev(runs), "runs": runs}


def _results():
    return {"rows": [{"group": "t", "epochs": 3}, {"group": "u", "epochs": 9}], "summary": [
        _row("t", "default N", [90.0, 92.0, 94.0]),             # the head's default N (3)
        _row("t", "another change", [50.0, 51.0, 52.0], norm=True),
        _row("t", "N = 5", [95.0, 96.0, 97.0], iters=5),
        _row("t", "N = 1", [80.0, 81.0, 82.0], iters=1),
        _row("t", "other model", [99.0, 99.0, 99.5], model="x", iters=2),
        _row("u", "N = 5", [10.0, 11.0, 12.0], iters=5),
    ]}


def test_rows_that_differ_only_in_n_sorted_with_the_heads_default():
    rows = newton.accuracy_by_iterations(_results(), "t")
    assert [(r.iters, r.variant) for r in rows] == [(1, "N = 1"), (3, "default N"), (5, "N = 5")]
    assert rows[1].mean == pytest.approx(92.0) and rows[1].std == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no row that sets iters"):
        newton.accuracy_by_iterations({"summary": [_row("v", "a", [1.0, 2.0])]}, "v")


def test_within_one_std_and_the_title_that_states_it():
    rows = newton.accuracy_by_iterations(_results(), "t")
    # best N = 5 (96 +- 1); N = 3 is 4 points below with std 2: outside; N = 1 far outside
    assert newton.within_one_std_of_best(rows) == (5, [5])
    wider = [r._replace(std=4.5) if r.iters == 3 else r for r in rows]
    assert newton.within_one_std_of_best(wider) == (5, [3, 5])
    fig = newton.accuracy_against_iterations(_results(), tables=("t", "u"), labels={"t": "net"})
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_title() == "net\nbest mean at N = 5; within 1 std: N = 5"
    assert fig.axes[1].get_title() == "u\nbest mean at N = 5; within 1 std: N = 5"
    assert "9 epochs" in fig.axes[1].get_xlabel()
    assert "3 seeds, 3 epochs" in fig.axes[0].get_xlabel()


@pytest.mark.skipif(not HEADS.is_file(), reason="no committed heads-cpu.json")
def test_the_committed_tables_notebook_02_reads():
    results = json.loads(HEADS.read_text())
    head = newton.accuracy_by_iterations(results, "isqrt_head")
    assert [r.iters for r in head] == [3, 5, 10]
    assert head[0].variant == "GSoP-Net2 as in gsoplib 0.2"
    for r in head:
        assert len(r.runs) == 3 and r.std == pytest.approx(statistics.stdev(r.runs))
    tables = {s["table"] for s in results["summary"]}
    if "isqrt_iters" in tables:
        iters = newton.accuracy_by_iterations(results, "isqrt_iters")
        assert [r.iters for r in iters] == sorted(r.iters for r in iters)
        assert all(r.variant == f"N = {r.iters}" for r in iters)
