"""Notebook 01's widget (gsoplib.viz.lessons_covariance) against the math it illustrates: the
covariance's rank is min(C, M - 1), the mean's probe stays at chance, the covariance's probe
needs a correlation and enough positions; the share a of the variance an image's own mean
removes; and the notebook's widget cell recomputes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from gsoplib.data.second_order import correlation_matrices, generate, smooth_unit_variance
from gsoplib.ops import covariance
from gsoplib.viz import lessons_covariance as lessons

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_covariance_pooling.ipynb"
CALLBACK = "lessons_covariance.probe_and_rank_view"


@pytest.mark.parametrize(("positions", "channels"), [(5, 8), (2, 3), (9, 8), (64, 3), (17, 16)])
def test_rank_is_min_of_channels_and_positions_minus_one(positions, channels):
    r = lessons.probe_and_rank(0.1, positions, channels, num_train=40, num_test=40)
    assert r.rank_bound == min(channels, positions - 1)
    assert r.ranks.tolist() == [r.rank_bound] * 40
    # past the rank the eigenvalues are zero up to rounding, before it far from it
    assert (r.eigenvalues[:, r.rank_bound:].abs() < 1e-12).all()
    assert (r.eigenvalues[:, r.rank_bound - 1] > 1e-9).all()


def test_the_samples_have_the_classes_correlation_shrunk_by_one_over_m():
    rho, positions = 0.3, 4
    x, labels = lessons.second_order_positions(80000, positions, 3, rho, seed=1)
    r_k = correlation_matrices(3, 8, rho)
    for k in (0, 5):
        mean_sigma = covariance(x[labels == k]).mean(0)
        torch.testing.assert_close(mean_sigma, (1 - 1 / positions) * r_k[k], atol=0.03, rtol=0)
        # the means carry no class: E[mu] = 0, Cov(mu) = R_k / M
        mean_mu = x[labels == k].mean(dim=-1).mean(0)
        torch.testing.assert_close(mean_mu, torch.zeros_like(mean_mu), atol=0.02, rtol=0)


def test_the_mean_is_blind_and_the_covariance_needs_a_correlation_and_positions():
    signal = lessons.probe_and_rank(0.3, 64, 3)
    assert signal.covariance_accuracy > 0.85 and signal.gap_accuracy < signal.chance + 0.06
    no_correlation = lessons.probe_and_rank(0.0, 64, 3)       # every R_k = I: one distribution
    assert no_correlation.covariance_accuracy < no_correlation.chance + 0.06
    few_positions = lessons.probe_and_rank(0.3, 4, 3)         # Sigma from 4 samples: noisy
    assert few_positions.covariance_accuracy < signal.covariance_accuracy - 0.3


def test_centring_share_matches_the_closed_form_and_a_measurement():
    # closed form for a separable, normalised Gaussian kernel k with circular padding:
    # sum_d c(d) = (sum k)^4 / (sum k^2)^2 = 1 / (sum k^2)^2, so a = 1 / (M (sum k^2)^2)
    for size, sigma in ((32, 1.5), (32, 0.7), (20, 2.0)):
        radius = math.ceil(3 * sigma)
        t = torch.arange(-radius, radius + 1, dtype=torch.float64)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        k = k / k.sum()
        closed = 1 / (size * size * k.square().sum().item() ** 2)
        assert lessons.centring_share(size, sigma) == pytest.approx(closed, rel=1e-9)
    assert lessons.centring_share(32, 0.0) == pytest.approx(1 / 1024)   # independent pixels
    # measured on the generator's own smooth field: Var(image mean) / Var(pixel)
    noise = torch.randn(4000, 2, 32, 32, generator=torch.Generator().manual_seed(3),
                        dtype=torch.float64)
    z = smooth_unit_variance(noise, 1.5)
    mu2 = z.mean(dim=(2, 3)).square().flatten()
    measured, se = mu2.mean() / z.square().mean(), mu2.std() / math.sqrt(mu2.numel())
    a = lessons.centring_share(32, 1.5)
    assert abs(measured - a) < 3 * se and a > 10 * se


def test_the_stored_images_covariance_is_shrunk_by_one_minus_a():
    images, labels = generate(4000, seed=5)
    x = (images.double() - 128.0) / 42.5
    flat = x.flatten(2)
    second = flat.square().mean()                       # per-pixel variance (clipping included)
    mu2 = flat.mean(-1).square()
    ratio = 1 - mu2.mean() / second                     # E[Sigma_ii] / E[(1/M) x x^T]_ii
    se = mu2.std() / math.sqrt(mu2.numel()) / second
    a = lessons.centring_share(32, 1.5)
    assert abs(ratio - (1 - a)) < 3 * se and abs(ratio - 1) > 10 * se


def test_rank_against_positions_is_the_bound():
    sizes = [2, 3, 5, 8, 9, 20]
    ranks = lessons.rank_against_positions(8, sizes, 0.2, num_samples=10)
    assert ranks.shape == (6, 10)
    assert ranks.tolist() == [[min(8, m - 1)] * 10 for m in sizes]


def test_largest_rho_is_where_a_class_stops_being_positive_definite():
    assert lessons.largest_rho(3, 8) == pytest.approx(0.5)
    assert lessons.largest_rho(2, 2) == pytest.approx(1.0)
    limit = lessons.largest_rho(8, 8)
    correlation_matrices(8, 8, limit * 0.999)
    with pytest.raises(ValueError, match="singular or indefinite"):
        correlation_matrices(8, 8, limit * 1.001)


def test_the_view_titles_say_what_was_computed():
    full = lessons.probe_and_rank_view(0.25, 64, 3, num_train=200, num_test=200)
    low = lessons.probe_and_rank_view(0.1, 5, 8, num_train=200, num_test=200)
    assert full.axes[1].get_title() == "rank of Sigma: 3 in every test sample (bound 3)"
    assert low.axes[1].get_title() == "rank of Sigma: 4 in every test sample (bound 4)"
    assert full.axes[0].get_title().startswith("linear probe: triu(Sigma) 0.")
    # the right panel shows the bound biting below M = C + 1 at every setting
    assert full.axes[2].get_title() == ("C = 3: rank = min(C, M - 1) in every sample,\n"
                                        "so below C = 3 for every M <= 3")
    assert low.axes[2].get_title().startswith("C = 8: rank = min(C, M - 1) in every sample")
    too_large = lessons.probe_and_rank_view(0.4, 64, 8, clamp_rho=False)
    assert "outside [0, 0.256)" in too_large.axes[0].texts[0].get_text()
    negative = lessons.probe_and_rank_view(-0.1, 64, 3)
    assert "outside [0, 0.500)" in negative.axes[0].texts[0].get_text()


def test_the_view_lowers_a_rho_too_large_for_the_channels_and_says_so():
    # the default rho = 0.25 is valid up to C = 8 (0.256), not at C = 9 (0.25) or 16 (0.228)
    assert lessons.largest_rho(9, 8) == pytest.approx(0.25)
    for channels, used, limit in ((9, 0.24, "0.250"), (16, 0.22, "0.228")):
        fig = lessons.probe_and_rank_view(0.25, 64, channels, num_train=200, num_test=200)
        title = fig._suptitle.get_text()
        assert title.startswith(f"rho = {used:g} (the 0.25 asked for lowered below {limit}, the "
                                f"largest valid rho for C = {channels})")
        # it computed at the lowered rho: the same accuracy as probe_and_rank there
        r = lessons.probe_and_rank(used, 64, channels, num_train=200, num_test=200)
        assert f"triu(Sigma) {r.covariance_accuracy:.2f} (train" in fig.axes[0].get_title()
    valid = lessons.probe_and_rank_view(0.25, 64, 8, num_train=200, num_test=200)
    assert valid._suptitle.get_text().startswith("rho = 0.25, M = 64")


def test_the_view_recomputes_with_the_training_samples_and_the_seed():
    few = lessons.probe_and_rank_view(0.2, 64, 16, num_train=1000)
    many = lessons.probe_and_rank_view(0.2, 64, 16, num_train=4000)
    accuracy = {name: [float(v) for v in re.findall(r"\d\.\d\d", fig.axes[0].get_title())]
                for name, fig in (("few", few), ("many", many))}
    # (test, train, mean): with 4000 samples the 136 features overfit less, test accuracy rises
    assert accuracy["many"][0] > accuracy["few"][0] + 0.1
    assert accuracy["few"][1] - accuracy["few"][0] > accuracy["many"][1] - accuracy["many"][0]
    assert "1000 training samples, seed 0" in few._suptitle.get_text()
    other = lessons.probe_and_rank_view(0.2, 64, 16, num_train=1000, seed=3)
    assert "seed 3" in other._suptitle.get_text()
    assert other.axes[0].get_title() != few.axes[0].get_title()


def test_notebook_widget_cell_recomputes_when_a_slider_moves(monkeypatch):
    """The widget cell follows the house pattern and, run as JupyterLab would, recomputes."""
    monkeypatch.chdir(NOTEBOOK.parent)
    code = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
    widget = [i for i, s in enumerate(code) if f"interactive(\n    {CALLBACK}," in s]
    assert len(widget) == 1, "one widget cell"
    i = widget[0]
    assert "# NBVAL_IGNORE_OUTPUT" in code[i] and "assert isinstance(" in code[i]
    assert code[i - 1].strip().startswith(f"{CALLBACK}("), "a static figure just before it"
    namespace: dict = {"display": lambda *objects: None}
    exec("\n".join(line for line in code[0].splitlines() if not line.startswith("%")), namespace)
    exec(code[i], namespace)
    view = namespace["covariance_widget"]
    assert isinstance(view.result, Figure)
    assert view.result.axes[1].get_title() == "rank of Sigma: 3 in every test sample (bound 3)"
    controls = {w.description: w for w in view.children if hasattr(w, "description")}
    controls["rho"].value = 0.1
    controls["channels"].value = 8
    controls["positions"].value = 5
    assert view.result.axes[1].get_title() == "rank of Sigma: 4 in every test sample (bound 4)"
    # the training-set size and the seed are sliders too, and a rho too large for C is lowered
    assert controls["num_train"].max == 8000 and controls["seed"].max == 9
    controls["num_train"].value = 500
    controls["seed"].value = 2
    assert "500 training samples, seed 2" in view.result._suptitle.get_text()
    controls["rho"].value = 0.25
    controls["channels"].value = 16
    assert view.result._suptitle.get_text().startswith("rho = 0.22 (the 0.25 asked for lowered")


def test_the_rank_panel_ticks_only_the_sampled_positions():
    for channels, positions in ((3, 64), (8, 5)):
        fig = lessons.probe_and_rank_view(0.1, positions, channels, num_train=100, num_test=100)
        ticks = sorted(fig.axes[2].get_xticks().tolist())
        assert ticks == sorted({2, channels + 1, 2 * channels + 2, positions})
        sampled = set(range(2, 2 * channels + 3)) | {positions}
        assert set(ticks) <= sampled


def test_centring_share_figure_draws_the_curve_and_the_measurements():
    fig = lessons.centring_share_figure(32, 1.5, {"diagonal": (0.0277, 0.0005)},
                                        widths=[0.0, 1.5, 3.0])
    curve = fig.axes[0].lines[0].get_ydata()
    assert curve[0] == pytest.approx(1 / 1024) and curve[1] == pytest.approx(0.0276, abs=1e-4)
    assert curve[2] > curve[1] > curve[0]                    # a wider blur: a larger share
    assert fig.axes[0].get_title() == ("32 x 32 images: a = 0.0276 at sigma = 1.5, "
                                       "1/a = 36 independent pixels of 1024")
    wider = lessons.centring_share_figure(32, 3.0, widths=[0.0, 3.0])
    assert wider.axes[0].get_title().startswith("32 x 32 images: a = 0.1")
    # the measurements are drawn where they were measured, at the generator's sigma
    both = lessons.centring_share_figure(32, 1.5, {"diagonal": (0.0277, 0.0005),
                                                   "off-diagonal": (0.0307, 0.0015)}, widths=[1.5])
    drawn = [line.get_xdata()[0] for line in both.axes[0].lines if line.get_marker() in ("o", "s")]
    assert drawn == [1.5, 1.5]


def test_class_covariance_figure_draws_r_k_above_each_class_mean():
    rho = 0.25
    reference = correlation_matrices(3, 8, rho)
    x, labels = lessons.second_order_positions(4000, 8, 3, rho, seed=3)
    sigma = covariance(x)
    fig = lessons.class_covariance_figure(sigma, labels, reference)
    images = [ax.get_images()[0].get_array() for ax in fig.axes[:16]]
    for k in (0, 6):
        assert (images[k] == reference[k].numpy()).all()                 # top row: R_k
        np.testing.assert_allclose(np.asarray(images[8 + k]), sigma[labels == k].mean(0).numpy())
    # independent positions: E[Sigma] = (1 - 1/M) R_k = 0.875 R_k, on and off the diagonal
    title = fig._suptitle.get_text()
    diag, off = (float(v) for v in re.findall(r"(\d\.\d+) (?:on the diagonal|off it)", title))
    assert diag == pytest.approx(0.875, abs=0.01) and off == pytest.approx(0.875, abs=0.05)
    # a different reference changes the factor the title reports
    other = lessons.class_covariance_figure(sigma, labels, 2 * reference)
    assert other._suptitle.get_text() != title and "0.43" in other._suptitle.get_text()


def test_class_covariance_figure_labels_its_colour_bar():
    reference = correlation_matrices(3, 8, 0.25)
    x, labels = lessons.second_order_positions(400, 8, 3, 0.25, seed=4)
    fig = lessons.class_covariance_figure(covariance(x), labels, reference,
                                          colorbar_label="entry value (correlation)")
    assert fig.axes[-1].get_ylabel() == "entry value (correlation)"
    assert lessons.class_covariance_figure(covariance(x), labels, reference).axes[-1].get_ylabel() \
        == "entry value"


def test_more_channels_help_the_probe_until_it_fits_noise():
    # the other channels' entries carry no class in their means but help (their noise correlates
    # with the informative entries'); at C = 16 the 136 features overfit 1000 training samples
    runs = {c: lessons.probe_and_rank(0.2, 64, c, seed=1) for c in (3, 6, 16)}
    assert runs[6].covariance_accuracy > runs[3].covariance_accuracy > runs[16].covariance_accuracy
    gap = {c: r.covariance_train_accuracy - r.covariance_accuracy for c, r in runs.items()}
    assert gap[16] > 0.2 > 0.05 > gap[3]
    more_data = lessons.probe_and_rank(0.2, 64, 16, num_train=4000, seed=1)
    assert more_data.covariance_accuracy > runs[16].covariance_accuracy + 0.1


def test_second_order_figure_shows_tilted_pixels_overlapping_means_and_separated_covariances():
    images, labels = generate(800, seed=7)
    names = [f"class {k}" for k in range(8)]
    fig = lessons.second_order_figure(images, labels, names, [0.5] * 3, [42.5 / 255] * 3)
    pixels, means, covs = fig.axes[8:11]
    assert fig._suptitle.get_text().startswith("the means overlap, the covariances separate")
    # (a) each line's slope is its legend's measured correlation, +rho for class 0, -rho for 4
    slopes = [float(re.search(r"= ([+-]\d\.\d+)", t.get_text()).group(1))
              for t in pixels.get_legend().get_texts()]
    assert slopes == [pytest.approx(0.25, abs=0.05), pytest.approx(-0.25, abs=0.05)]
    for line, slope in zip(pixels.get_lines(), slopes):
        x, y = line.get_data()
        assert (y[1] - y[0]) / (x[1] - x[0]) == pytest.approx(slope, abs=0.01)
    # (b) and (c): every image's mu_0, mu_1 and Sigma_01, Sigma_02, class by class
    x = (images.double() - 127.5) / 42.5
    sigma, mu = covariance(x), x.flatten(2).mean(-1)
    for k in (0, 5):
        np.testing.assert_allclose(means.collections[k].get_offsets(), mu[labels == k][:, :2])
        np.testing.assert_allclose(covs.collections[k].get_offsets(),
                                   torch.stack([sigma[labels == k][:, 0, 1],
                                                sigma[labels == k][:, 0, 2]], 1))
    # the sign of Sigma_01 separates class 0 (+) from class 4 (-); the means do not
    s01 = {k: covs.collections[k].get_offsets()[:, 0] for k in (0, 4)}
    assert (s01[0] > 0).mean() > 0.95 and (s01[4] < 0).mean() > 0.95
    m0 = {k: means.collections[k].get_offsets()[:, 0] for k in (0, 4)}
    assert abs(np.mean(m0[0]) - np.mean(m0[4])) < 0.1


def test_feature_covariance_figure_reports_the_rank_bound():
    g = torch.Generator().manual_seed(8)
    few = torch.randn(6, 16, 3, 3, generator=g, dtype=torch.float64)      # M = 9 <= C = 16
    fig = lessons.feature_covariance_figure(covariance(few), 9, source="toy")
    assert fig.axes[1].get_title() == (
        "rank of Sigma: 8 in the 6 images (bound min(C, M - 1) = 8): 8 zero eigenvalues each")
    assert "rank(Sigma) <= M - 1 = 8 < C" in fig._suptitle.get_text()
    zeros = [line for line in fig.axes[1].get_lines() if line.get_label().startswith("zero eig")]
    assert len(zeros) == 1 and len(zeros[0].get_xdata()) == 8
    many = torch.randn(6, 4, 5, 5, generator=g, dtype=torch.float64)       # M = 25 > C = 4
    full = lessons.feature_covariance_figure(covariance(many), 25)
    assert full.axes[1].get_title().startswith("rank of Sigma: 4 in the 6 images")
    assert "full rank" in full._suptitle.get_text()


def test_feature_covariance_figure_draws_correlations_on_minus_one_to_one():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(3, 6, 5, 5, generator=g, dtype=torch.float64)
    x[:, 2] *= 10                                         # one channel with a large variance
    sigma = covariance(x)
    fig = lessons.feature_covariance_figure(sigma, 25, correlation=True)
    shown = np.asarray(fig.axes[0].get_images()[0].get_array())
    d = sigma[0].diagonal().rsqrt()
    np.testing.assert_allclose(shown, (d[:, None] * sigma[0] * d[None, :]).numpy())
    assert fig.axes[0].get_images()[0].get_clim() == (-1.0, 1.0)
    assert np.allclose(np.diag(shown), 1.0)
    variances = sigma[0].diagonal()
    assert (f"median {float(variances.median()):.2f}, largest {float(variances.max()):.2f}"
            in fig.axes[0].get_title())
    assert fig.axes[2].get_ylabel() == "correlation of channels i and j"
    plain = lessons.feature_covariance_figure(sigma, 25)     # the default draws Sigma itself
    assert plain.axes[0].get_images()[0].get_clim()[1] == pytest.approx(float(sigma[0].abs().max()))
    dead = sigma.clone()
    dead[:, 4, :] = dead[:, :, 4] = 0                                 # a channel with zero variance
    blank = np.asarray(lessons.feature_covariance_figure(dead, 25, correlation=True)
                       .axes[0].get_images()[0].get_array())
    assert np.isnan(blank[4]).all() and not np.isnan(blank[0, :4]).any()


def test_feature_covariance_figure_names_the_noise_baseline_beside_the_image_median():
    g = torch.Generator().manual_seed(10)
    sigma = covariance(torch.randn(2, 6, 5, 5, generator=g, dtype=torch.float64))
    d = sigma[0].diagonal().rsqrt()
    corr = (d[:, None] * sigma[0] * d[None, :]).abs()
    own = float(corr[~torch.eye(6, dtype=torch.bool)].median())
    title = lessons.feature_covariance_figure(sigma, 25, correlation=True,
                                              noise_median=0.123).axes[0].get_title()
    assert f"median |correlation| {own:.2f}; positions shuffled (noise alone) 0.12" in title
    plain = lessons.feature_covariance_figure(sigma, 25, correlation=True).axes[0].get_title()
    assert "shuffled" not in plain


def test_saved_bytes_are_what_each_form_keeps():
    from gsoplib.ops import covariance_centring_matrix, saved_tensor_bytes
    from gsoplib.ops.authors_covpool import authors_covpool

    forms = {"authors": authors_covpool, "autograd": covariance_centring_matrix,
             "gsoplib": covariance}
    for channels, side in ((16, 3), (8, 6), (32, 4)):
        x = torch.randn(1, channels, side, side, requires_grad=True)
        for name, form in forms.items():
            kept = saved_tensor_bytes(lambda f=form, v=x: f(v))
            assert kept == lessons.saved_bytes(channels, side * side, name), (name, channels, side)
    m = np.array([49, 784])
    np.testing.assert_array_equal(lessons.saved_bytes(128, m, "gsoplib"), 4 * 128 * m)


def test_saved_bytes_figure_draws_the_three_forms_and_the_measurements():
    measured = {"authors": {196: 254016, 784: 2860032}, "gsoplib": {784: 401408}}
    fig = lessons.saved_bytes_figure(128, measured=measured)
    ax = fig.axes[0]
    assert ax.get_title() == ("C = 128: I_hat's M^2 passes X's CM at M = C = 128; at M = 784 I_hat "
                              "is 6.1x X")
    assert ax.get_xscale() == ax.get_yscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    authors = lines["the authors' layer (authors_covpool)"]
    # the legend names the forms without their byte formulas (notebook 01's exercise 3)
    assert not any("M^2 +" in label for label in lines)
    x, y = authors.get_data()
    np.testing.assert_allclose(y, 4 * (x * x + 128 * x) / 1e6)
    markers = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert [list(line.get_xdata()) for line in markers] == [[196, 784], [784]]
    np.testing.assert_allclose(markers[0].get_ydata(), [0.254016, 2.860032])
    # the finding moves with C: at C = 64, M = 784 is 12.25 times C
    title = lessons.saved_bytes_figure(64).axes[0].get_title()
    assert "M = C = 64; at M = 784 I_hat is 12.2x X" in title


def test_channel_accuracy_figure_draws_draws_means_and_controls():
    test = {3: [0.85, 0.86], 6: [0.88, 0.90], 16: [0.70, 0.72]}
    train = {3: [0.87, 0.87], 6: [0.94, 0.95], 16: [1.0, 1.0]}
    fig = lessons.channel_accuracy_figure(test, train, {"raw": (16, [0.84, 0.83])})
    ax = fig.axes[0]
    assert ax.get_title() == "best mean test accuracy at C = 6: 0.890"
    mean_line = ax.lines[0]
    assert list(mean_line.get_xdata()) == [3, 6, 16]
    assert list(mean_line.get_ydata()) == pytest.approx([0.855, 0.89, 0.71])
    controls = fig.axes[1]              # the controls sit in their own panel, not on the C axis
    assert max(x for line in ax.lines for x in line.get_xdata()) == 16
    raw_bar = controls.lines[-1]
    assert list(raw_bar.get_ydata()) == pytest.approx([0.835, 0.835])
    assert [t.get_text() for t in controls.get_xticklabels()] == ["raw"]
    assert len(lessons.channel_accuracy_figure(test, train).axes) == 1
    # the best C moves when the test accuracies do
    test[16] = [0.95, 0.95]
    title = lessons.channel_accuracy_figure(test, train).axes[0].get_title()
    assert title.startswith("best mean test accuracy at C = 16")
    # a caller's title (the finding) replaces the default
    fig = lessons.channel_accuracy_figure(test, train, title="more channels help, then overfit")
    assert fig.axes[0].get_title() == "more channels help, then overfit"


def test_channel_accuracy_figure_draws_the_bayes_rule_and_slanted_control_labels():
    test = {3: [0.85, 0.86], 6: [0.88, 0.90], 16: [0.70, 0.72]}
    train = {3: [0.87, 0.87], 6: [0.94, 0.95], 16: [1.0, 1.0]}
    plain = lessons.channel_accuracy_figure(test, train)
    fig = lessons.channel_accuracy_figure(test, train, bayes={16: 0.96, 3: 0.87, 6: 0.92})
    assert len(fig.axes[0].lines) == len(plain.axes[0].lines) + 1      # one line more, no more
    bayes = [line for line in fig.axes[0].lines if line.get_label() == "Bayes rule, true R_k"]
    assert len(bayes) == 1 and bayes[0].get_linestyle() == "--"
    assert list(bayes[0].get_xdata()) == [3, 6, 16]                      # sorted by C
    assert list(bayes[0].get_ydata()) == pytest.approx([0.87, 0.92, 0.96])
    labels = {"C = 16: raw entries": (16, [0.84]), "C = 16: mean subtracted only": (16, [0.67])}
    fig = lessons.channel_accuracy_figure(test, train, labels, bayes={3: 0.87})
    ticks = fig.axes[1].get_xticklabels()
    assert [t.get_rotation() for t in ticks] == [35.0, 35.0]
    assert [t.get_text() for t in ticks] == ["C = 16: raw entries", "C = 16: mean\nsubtracted only"]
