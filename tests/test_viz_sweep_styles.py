"""Every pooling that benchmarks/compare.py's sweep trains has its own colour and marker in
gsoplib.viz.sweep.STYLES (a missing one falls back to the default colour and GAP's circle)."""

from __future__ import annotations

import ast
from pathlib import Path

from gsoplib.viz.sweep import STYLES

COMPARE = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"


def _poolings() -> tuple[str, ...]:
    """POOLINGS read from compare.py's source, without importing the script."""
    for node in ast.parse(COMPARE.read_text()).body:
        names = [getattr(t, "id", None) for t in getattr(node, "targets", ())]
        if isinstance(node, ast.Assign) and "POOLINGS" in names:
            return ast.literal_eval(node.value)
    raise AssertionError("POOLINGS not found in benchmarks/compare.py")


def test_every_sweep_pooling_has_a_style():
    poolings = _poolings()
    assert "GAP x4" in poolings and "GAP + MLP" in poolings
    assert set(poolings) <= set(STYLES), sorted(set(poolings) - set(STYLES))


def test_styles_are_distinct():
    assert len(set(STYLES.values())) == len(STYLES)
    assert len({colour for colour, _ in STYLES.values()}) == len(STYLES)
