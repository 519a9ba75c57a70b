"""Notebook 05's warm-up widget (gsoplib.viz.lessons_training): its callback trains a tiny
network at two settings and the computed losses differ as the notebook says they do."""

from __future__ import annotations

import math

import pytest
from matplotlib.figure import Figure

from gsoplib.train import lr_factor
from gsoplib.viz import lessons_training


def test_the_rate_follows_the_warm_up_and_the_cosine():
    warm = lessons_training.warmup_run(0.2, 16, "GAP")
    cold = lessons_training.warmup_run(0.2, 0, "GAP")
    assert len(warm.lrs) == len(cold.lrs) == 64 and len(warm.losses) == 64
    assert warm.lrs[0] == 0.0 and warm.lrs[8] == pytest.approx(0.1) and warm.lrs[16] == 0.2
    assert cold.lrs[0] == 0.2 and cold.lrs[-1] < 0.001
    # the trainer's rule, read in steps: an epoch is one pass over the 8 fixed batches
    assert warm.lrs[40] == pytest.approx(0.2 * lr_factor(40 / 8, 8, "cosine", warmup_epochs=2))
    # the same network, the same batches: the first loss is the untrained network's
    assert warm.losses[0] == cold.losses[0] and abs(warm.losses[0] - math.log(8)) < 0.3


def test_warm_up_tames_the_scaled_head_s_first_steps():
    """The x4 iSQRT-COV head at 0.2 (eight times the recipe's rate at batch 32): without
    warm-up its loss rises to about twice its start and the run ends higher; with 16 steps of
    warm-up it stays near its start. Measured for seeds 0-2 (notebook 05 prints them)."""
    warm = lessons_training.warmup_run(0.2, 16, "iSQRT-COV x4", 5.0, seed=0)
    cold = lessons_training.warmup_run(0.2, 0, "iSQRT-COV x4", 5.0, seed=0)
    assert not warm.diverged and not cold.diverged
    assert cold.highest > 1.4 * warm.highest and warm.highest < 1.3 * warm.losses[0]
    assert cold.final > warm.final + 0.4
    fig = lessons_training.warmup_view(0.2, 16, "iSQRT-COV x4", 5.0, 0)
    title = fig.axes[0].get_title()
    assert title == ("iSQRT-COV x4, peak lr 0.2, clip 5, seed 0\nwarm-up 16 steps: loss peaks "
                     f"at {warm.highest:.3g}, ends at {warm.final:.2f}; without: loss peaks at "
                     f"{cold.highest:.3g}, ends at {cold.final:.2f}")
    alone = lessons_training.warmup_view(0.2, 0, "iSQRT-COV x4", 5.0, 0).axes[0].get_title()
    assert alone.endswith(f"no warm-up: loss peaks at {cold.highest:.3g}, ends at {cold.final:.2f}")
    assert len(fig.axes[0].get_lines()) == 3 and len(fig.axes[1].get_lines()) == 2


def test_gap_does_not_care_at_that_rate():
    warm = lessons_training.warmup_run(0.2, 16, "GAP")
    cold = lessons_training.warmup_run(0.2, 0, "GAP")
    assert abs(cold.final - warm.final) < 0.1
    assert max(cold.highest, warm.highest) < 1.1 * cold.losses[0]   # no spike either way


def test_what_notebook_05_says_the_other_controls_show():
    """Seed 0, the notebook's words after its table: the paper's x1 head does not care at 0.2;
    at the recipe's rate (0.025) neither does the x4 head; at 0.8 the x4 head learns nothing
    either way; without clipping the x4 head's spike is as high and its run ends no lower."""
    for peak, head in ((0.2, "iSQRT-COV x1"), (0.025, "iSQRT-COV x4")):
        cold = lessons_training.warmup_run(peak, 0, head)
        warm = lessons_training.warmup_run(peak, 16, head)
        assert abs(cold.final - warm.final) < 0.1 and cold.highest < 1.1 * cold.losses[0]
    for warmup in (0, 16):
        assert lessons_training.warmup_run(0.8, warmup, "iSQRT-COV x4").final > 0.95 * math.log(8)
    clipped = lessons_training.warmup_run(0.2, 0, "iSQRT-COV x4", 5.0)
    unclipped = lessons_training.warmup_run(0.2, 0, "iSQRT-COV x4", 0.0)
    assert abs(unclipped.highest / clipped.highest - 1) < 0.06
    assert unclipped.final >= clipped.final


def test_a_huge_rate_diverges_and_the_title_says_so():
    run = lessons_training.warmup_run(30.0, 0, "iSQRT-COV x4", 0.0)
    assert run.diverged and run.final == math.inf and len(run.lrs) == 64
    fig = lessons_training.warmup_view(30.0, 0, "iSQRT-COV x4", 0.0)
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_title().endswith(f"diverged (loss not finite at step {len(run.losses)})")


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown head 'SE'"):
        lessons_training.warmup_run(0.1, 0, "SE")
    with pytest.raises(ValueError, match="warmup_steps must be in"):
        lessons_training.warmup_run(0.1, 64, "GAP")
