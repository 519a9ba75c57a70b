"""The toy mixture of notebook 04 (GM-SOP Fig. 2 in seconds): without the balance loss a few
components take the choices, with alpha = 100 every component is busy; the widget's callback
computes what its controls say."""

from __future__ import annotations

import math

import pytest
import torch

from gsoplib.toy_mixture import (
    BUSY_FRACTION,
    random_features,
    toy_data,
    train_toy_mixture,
    usage_cv,
)
from gsoplib.viz import gate_benchmarks, lessons_mixture


@pytest.fixture(scope="module")
def data():
    return toy_data(train_samples=4000, test_samples=500)


@pytest.fixture(scope="module")
def runs(data):
    return {alpha: train_toy_mixture(data, 16, 4, alpha) for alpha in (0.0, 100.0)}


def test_random_features_are_fixed_relu_projections():
    images = torch.randn(5, 1, 28, 28)
    a, b = random_features(images, 32, seed=3), random_features(images, 32, seed=3)
    assert a.shape == (5, 32, 1, 1) and torch.equal(a, b)
    assert (a >= 0).all() and not torch.equal(a, random_features(images, 32, seed=4))
    gen = torch.Generator().manual_seed(3)
    projection = torch.randn(32, 784, generator=gen) / 28.0
    assert torch.allclose(a.flatten(1), (images.flatten(1) @ projection.T).clamp(min=0), atol=1e-5)


def test_usage_cv_against_the_formula():
    assert usage_cv([0.25] * 4) == 0.0
    collapsed = [0.25] * 4 + [0.0] * 12                 # K = 4 of N = 16 take every choice
    assert math.isclose(usage_cv(collapsed), math.sqrt(16 / 4 - 1))
    values = torch.tensor([0.1, 0.5, 0.2, 0.2], dtype=torch.float64)
    direct = math.sqrt(((values - values.mean()) ** 2).mean()) / values.mean()
    assert math.isclose(usage_cv(values), float(direct), rel_tol=1e-12)


def test_alpha_0_collapses_and_alpha_100_does_not(runs):
    free, balanced = runs[0.0], runs[100.0]
    assert free.usage_cv > 0.8 and free.busy <= 12, free.summary()
    assert sum(sorted(free.usage)[-4:]) > 0.5, "the top 4 of 16 take most choices without the loss"
    assert balanced.usage_cv < 0.3 and balanced.busy == 16, balanced.summary()
    assert free.train.degenerate and "under" in free.train.verdict
    assert math.isclose(sum(free.usage), 1.0) and len(free.usage) == 16
    assert free.busy == sum(u >= BUSY_FRACTION / 16 for u in free.usage)
    # the head learned something in both cases (chance is 10%)
    assert free.test_top1 > 0.6 and balanced.test_top1 > 0.6


def test_training_is_deterministic(data, runs):
    again = train_toy_mixture(data, 16, 4, 0.0)
    assert again.usage == runs[0.0].usage and again.test_top1 == runs[0.0].test_top1


def test_bad_settings_are_one_sentence(data):
    with pytest.raises(ValueError, match="k must be between 1 and num_components=4"):
        train_toy_mixture(data, 4, 5)
    with pytest.raises(ValueError, match="window"):
        train_toy_mixture(data, 4, 2, steps=10, window=20)


def test_widget_callback_follows_its_controls(data, runs):
    run, fig = lessons_mixture.toy_mixture_view(data, alpha=100.0, num_components=16, k=4)
    assert run.usage == runs[100.0].usage and len(fig.axes) == 3
    low, _ = lessons_mixture.toy_mixture_view(data, alpha=0.0, num_components=16, k=4)
    assert low.usage_cv > 2 * run.usage_cv                        # alpha moves the unevenness
    small, _ = lessons_mixture.toy_mixture_view(data, 0.0, num_components=8, k=2, steps=100)
    assert (small.num_components, small.k, len(small.usage)) == (8, 2, 8)
    assert small.cv_history[-1][0] == 100
    standardised, _ = lessons_mixture.toy_mixture_view(data, 0.0, 16, 4, standardise=True)
    assert standardised.standardise and standardised.usage_cv < low.usage_cv
    none, message = lessons_mixture.toy_mixture_view(data, 0.0, num_components=4, k=8)
    assert none is None and "K = 8 is more than N = 4" in message
    mixing, _ = lessons_mixture.toy_mixture_view(data, 0.0, 16, 4, gate="mixing")
    assert mixing.gate == "mixing" and mixing.usage != low.usage


def test_at_k_1_alpha_changes_nothing_and_the_figure_says_so(data):
    """K = 1: the kept weight is 1 whatever the logits, so the importance is a count of
    one-hot rows and the balance loss, like the task loss, gives the gate no gradient. Two runs
    that differ only in alpha are then the same run."""
    free, fig = lessons_mixture.toy_mixture_view(data, 0.0, 8, 1, steps=60)
    balanced, _ = lessons_mixture.toy_mixture_view(data, 100.0, 8, 1, steps=60)
    assert free.usage == balanced.usage and free.test_top1 == balanced.test_top1
    assert "alpha changes nothing" in fig._suptitle.get_text()
    two, _ = lessons_mixture.toy_mixture_view(data, 100.0, 8, 2, steps=60)
    free_two, _ = lessons_mixture.toy_mixture_view(data, 0.0, 8, 2, steps=60)
    assert two.usage != free_two.usage


def test_fig2_figure_has_a_panel_per_run_and_the_curves(runs):
    fig = lessons_mixture.fig2_figure([runs[0.0], runs[100.0]])
    assert len(fig.axes) == 3
    assert len(fig.axes[-1].get_lines()) == 2
    with pytest.raises(ValueError, match="at least one run"):
        lessons_mixture.fig2_figure([])


def test_saturation_figure_draws_each_variant_where_its_numbers_say():
    rows = [
        {"variant": "live", "logit_span": 190.0, "effective_components": 1.13,
         "test_top1": 76.8, "test_top1_std": 9.0},
        {"variant": "cosine_s4", "logit_span": 1.8, "effective_components": 3.9,
         "test_top1": 97.5, "test_top1_std": 0.4},
    ]
    fig = gate_benchmarks.saturation_figure(rows)
    points = fig.axes[0].collections
    assert [tuple(c.get_offsets()[0]) for c in points] == [(190.0, 1.13), (1.8, 3.9)]
    assert [t.get_text() for t in fig.axes[0].texts] == ["live", "cosine_s4"]
    bars = fig.axes[1].patches
    assert [b.get_height() for b in bars] == [76.8, 97.5]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["live", "cosine_s4"]
    with pytest.raises(ValueError, match="at least one row"):
        gate_benchmarks.saturation_figure([])


def test_fig3_figure_has_a_line_per_n_over_k():
    rows = [{"N": n, "K": k, "test_top1": 90 + n / 4 + k, "test_top1_std": 0.5,
             "train_images_per_s": 500 - 20 * k, "effective_components": 0.9 * k}
            for n in (4, 8) for k in (1, 2) if k < n]
    fig = gate_benchmarks.fig3_figure(rows, title="t")
    accuracy = fig.axes[0]
    assert [text.get_text() for text in accuracy.get_legend().get_texts()] == ["N = 4", "N = 8"]
    lines = [container.lines[0] for container in accuracy.containers]
    assert [list(line.get_ydata()) for line in lines] == [[92.0, 93.0], [93.0, 94.0]]
    assert list(fig.axes[2].get_lines()[-1].get_ydata()) == [1, 2]  # the all-K-count diagonal


def test_importance_cv_is_the_population_cv_of_the_weights_sums(runs):
    """lessons_mixture.importance_cv rescales the diagnostics' Eq. 4 statistic (sample variance)
    to a population CV, like usage_cv of the counts: the loss evens the importance it sees."""
    for run in runs.values():
        n = run.num_components
        assert math.isclose(lessons_mixture.importance_cv(run) ** 2, run.train.cv2 * (n - 1) / n)
    free = lessons_mixture.importance_cv(runs[0.0])
    balanced = lessons_mixture.importance_cv(runs[100.0])
    assert balanced < 0.1 < 1.0 < free
    assert balanced < runs[100.0].usage_cv      # the loss evens the importance more than the counts


def test_at_k_equal_n_the_counts_are_even_but_alpha_still_evens_the_weights(data):
    """K = N: every component is chosen for every image, so the choice counts are even whatever
    alpha; the balance loss sees the importance (the weights' sums), which it still evens."""
    free, fig = lessons_mixture.toy_mixture_view(data, 0.0, 8, 8, steps=60)
    balanced, balanced_fig = lessons_mixture.toy_mixture_view(data, 100.0, 8, 8, steps=60)
    assert free.usage_cv == balanced.usage_cv == 0.0
    assert lessons_mixture.importance_cv(balanced) < 0.5 * lessons_mixture.importance_cv(free)
    title = fig._suptitle.get_text()
    assert "K = N" in title and "the choice counts are even" in title
    assert "nothing to balance" not in title
    assert f"importance CV {lessons_mixture.importance_cv(free):.2f}" in title
    assert balanced_fig._suptitle.get_text() != title


def test_toy_view_is_the_widget_figure_and_recomputes(data):
    """The toy widget's callback returns the figure of the run its controls describe."""
    default = lessons_mixture.toy_view(data)
    balanced = lessons_mixture.toy_view(data, alpha=100.0)
    assert default.axes[0].get_title().startswith("alpha = 0:")
    assert balanced.axes[0].get_title().startswith("alpha = 100:")
    assert default.axes[0].get_title() != balanced.axes[0].get_title()
    assert "K = 8 is more than N = 4" in lessons_mixture.toy_view(data, num_components=4, k=8)
