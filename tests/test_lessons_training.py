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


def test_grad_norms_say_where_the_clip_engaged():
    """Notebook 05: without warm-up the x4 head's gradient stays below the clip until the loss
    has spiked, so the clipped and unclipped runs agree up to the spike."""
    clipped = lessons_training.warmup_run(0.2, 0, "iSQRT-COV x4", 5.0)
    unclipped = lessons_training.warmup_run(0.2, 0, "iSQRT-COV x4", 0.0)
    assert len(clipped.grad_norms) == len(clipped.losses) == 64
    spike = clipped.losses.index(clipped.highest)
    assert max(clipped.grad_norms[:spike]) < 5.0 < clipped.grad_norms[spike]
    assert clipped.losses[:spike + 1] == unclipped.losses[:spike + 1]
    assert clipped.grad_norms[:spike + 1] == unclipped.grad_norms[:spike + 1]
    # the norm is measured before clipping: a clipped step still reports its full norm
    assert unclipped.final >= clipped.final
    gap = lessons_training.warmup_run(0.2, 16, "GAP")
    assert len(gap.grad_norms) == 64 and all(n > 0 for n in gap.grad_norms)


def _bundled_rows():
    return [
        {"model": "small_vanilla", "data": "fashion_mnist", "epochs": 2, "test top-1": 0.9191},
        {"model": "small_gsop1", "data": "fashion_mnist", "epochs": 5, "test top-1": 0.9331},
        {"model": "small_vanilla", "data": "second_order", "epochs": 10, "test top-1": 0.996},
        {"model": "small_gsop1", "data": "second_order", "epochs": 10, "test top-1": 0.999},
    ]


def test_bundled_figure_counts_errors_with_binomial_bars():
    fig = lessons_training.bundled_figure(_bundled_rows(), {"fashion_mnist": 10_000,
                                                            "second_order": 2_000})
    accuracy, errors = fig.axes
    assert accuracy.get_xlim() == (0.0, 100.0)
    assert accuracy.get_title() == ("fashion_mnist: 91.9-93.3% test top-1\n"
                                    "2-5 epochs, unequal budgets: no ranking")
    assert [p.get_width() for p in accuracy.patches] == pytest.approx([91.91, 93.31])
    assert errors.get_title() == ("second_order: small_vanilla 8, small_gsop1 2 test errors of "
                                  "2,000\n10 epochs, one seed each: a hint, no ranking")
    assert [p.get_width() for p in errors.patches] == [8, 2]
    # the bars' half-widths are the binomial standard errors sqrt(n p (1 - p))
    segments = errors.collections[0].get_segments()
    half = sorted((s[1][0] - s[0][0]) / 2 for s in segments)
    assert half == pytest.approx(sorted([math.sqrt(2000 * 0.996 * 0.004),
                                         math.sqrt(2000 * 0.999 * 0.001)]))
    # counting errors on another dataset instead changes what is drawn
    other = lessons_training.bundled_figure(_bundled_rows(), {"fashion_mnist": 10_000,
                                                              "second_order": 2_000},
                                            count_errors=())
    assert other.axes[1].get_xlim() == (0.0, 100.0)
    # a note is written in the error-count panel, and only when given
    noted = lessons_training.bundled_figure(_bundled_rows(), {"fashion_mnist": 10_000,
                                                              "second_order": 2_000},
                                            note="paired: 7 vs 1")
    assert "paired: 7 vs 1" in [t.get_text() for t in noted.axes[1].texts]
    assert "paired: 7 vs 1" not in [t.get_text() for t in fig.axes[1].texts]


def test_pair_misses_are_the_images_each_bundled_model_gets_wrong():
    from gsoplib.data import load_dataset
    test = load_dataset("second_order", train=False)
    for name, missed in lessons_training.PAIR_MISSES.items():
        right = lessons_training.per_image_correct(name, test.images, test.labels)
        assert right.shape == (2000,)
        assert tuple((~right).nonzero().flatten().tolist()) == missed


def test_fc_input_norm_reads_the_classifier_s_input_and_its_scale():
    """||f||^2 of what the head's fc reads: GAP x4's is exactly 16 times GAP's (the same
    initial weights), the x4 head's about 18 times GAP's on the widget's batches (notebook 05)."""
    import torch

    from gsoplib.models import create_model

    batches, _, classes = lessons_training.fixed_batches()
    x = torch.cat(batches[:2])
    norm = {}
    for name, kwargs in (("GAP", {}), ("GAP x4", {"head_kwargs": {"feature_scale": 4.0}}),
                         ("iSQRT-COV x4", lessons_training.HEADS["iSQRT-COV x4"])):
        torch.manual_seed(0)
        model = create_model("small_vanilla", num_classes=classes, in_chans=3,
                             **{**lessons_training.BACKBONE, **kwargs}).train()
        norm[name] = lessons_training.fc_input_norm(model, x)
    assert norm["GAP x4"] == pytest.approx(16 * norm["GAP"], rel=1e-4)
    assert 15 < norm["iSQRT-COV x4"] / norm["GAP"] < 21


def test_depth_figure_states_the_first_and_last_depth():
    accuracy = {"the image": {"gap": 13.0, "covariance": 82.0},
                "stem": {"gap": 55.6, "covariance": 69.3},
                "layer3": {"gap": 16.8, "covariance": 17.1}}
    fig = lessons_training.depth_figure(accuracy, chance=12.5)
    assert fig.axes[0].get_title() == ("an untrained network loses the set with depth: "
                                       "covariance 82% -> 17%; GAP 13% -> 56% after the stem "
                                       "-> 17% after layer3 (chance 12.5%)")
    moved = lessons_training.depth_figure({**accuracy, "layer3": {"gap": 60.0, "covariance": 40.0}},
                                          chance=12.5, network="untrained small_vanilla")
    assert moved.axes[0].get_title() == ("untrained small_vanilla loses the set with depth: "
                                         "covariance 82% -> 40%; GAP 13% -> 60% (chance 12.5%)")


def test_smoothed_target_entropy_and_its_line():
    import torch
    from torch.nn import functional as F

    from gsoplib.viz import step_curves
    q = torch.full((8,), 0.1 / 8)
    q[3] += 0.9
    floor = lessons_training.smoothed_target_entropy(8, 0.1)
    assert floor == pytest.approx(-(q * q.log()).sum().item(), rel=1e-6)
    assert floor == pytest.approx(0.467, abs=5e-4)
    loss_at_q = F.cross_entropy(q.log()[None], torch.tensor([3]), label_smoothing=0.1).item()
    assert loss_at_q == pytest.approx(floor, rel=1e-5)          # the floor is reached at p = q
    assert lessons_training.smoothed_target_entropy(10, 0.1) > floor   # more classes, higher floor
    steps = [{"step": i, "epoch": i / 4, "lr": 0.1, "train_loss": 2.0 - 0.1 * i, "train_top1": 0.5}
             for i in range(1, 9)]
    fig = lessons_training.with_loss_floor(step_curves([{"model": "m", "steps": steps}]), floor)
    line = [ln for ln in fig.axes[0].lines if ln.get_label().startswith("H(q)")]
    assert len(line) == 1 and line[0].get_ydata()[0] == pytest.approx(floor)
    assert line[0].get_label() == "H(q): floor under label smoothing (0.467)"
    with pytest.raises(ValueError):
        lessons_training.smoothed_target_entropy(8, 0.0)
