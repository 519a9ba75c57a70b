"""Notebook 03's lessons (gsoplib.viz.lessons_block): Table 2's formulas against counts, the
placement widget's callback at two settings of c and of the mask, and the trained-versus-untrained
summary of channel weights."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from gsoplib.blocks import GSoPChannel
from gsoplib.models import count_multiply_adds, count_parameters
from gsoplib.viz import lessons_block


@pytest.mark.parametrize(("channels", "c", "side"),
                         [(256, 64, 56), (1024, 128, 14), (2048, 256, 14)])
def test_formulas_are_what_the_block_counts(channels, c, side):
    block = GSoPChannel(channels, c)
    assert count_parameters(block) == lessons_block.block_parameters(channels, c)
    assert count_multiply_adds(block, side, channels) == lessons_block.block_multiply_adds(
        channels, c, side * side)


def test_table2_sizes():
    assert round(lessons_block.block_parameters(1024, 128) / 1e6, 2) == 0.72
    # Table 2 says 28.1 MFLOPs; the plain count of every product is 29.49 M (table2_fit: 28.10 M)
    assert lessons_block.block_multiply_adds(1024, 128, 196) == 29_491_200


def test_placement_view_recomputes_with_c():
    small, large = (lessons_block.placement_cost(c, "-,-,C,-") for c in (64, 256))
    for cost in (small, large):
        assert [s.placed for s in cost.stages] == [False, False, True, False]
        assert cost.added_params == sum(s.params for s in cost.stages if s.placed)
        assert cost.added_multiply_adds == sum(s.multiply_adds for s in cost.stages if s.placed)
        assert cost.vanilla_params == small.vanilla_params
    # the parameters grow as the formula says: 5C'c + 4c^2 + 9c at C' = 1024
    grown = lessons_block.block_parameters(1024, 256) - lessons_block.block_parameters(1024, 64)
    assert large.added_params - small.added_params == grown
    # conv4_x has M = 196 positions: c = 64 keeps full rank, c = 256 is capped at M - 1
    s4_small, s4_large = small.stages[2], large.stages[2]
    assert (s4_small.positions, s4_small.rank, s4_small.rank_bound) == (196, 64, 64)
    assert (s4_large.rank, s4_large.rank_bound) == (195, 195)
    assert s4_large.eigenvalues[195:].max() < 1e-5 < s4_large.eigenvalues[194]
    titles = {c: [ax.get_title() for ax in lessons_block.placement_figure(cost).axes]
              for c, cost in ((64, small), (256, large))}
    assert titles[64][2] == "covariance rank (c = 64): S4 64"
    assert titles[256][2] == "covariance rank (c = 256): S4 195"
    assert titles[64][0] != titles[256][0] and titles[64][0].startswith("+0.35 M parameters")


def test_placement_view_recomputes_with_the_mask():
    first = lessons_block.placement_cost(128, "C,-,-,-")
    last = lessons_block.placement_cost(128, "-,-,-,C")
    # S2's block works on 56 x 56 positions of 256 channels, S5's on 14 x 14 of 2048
    assert first.added_multiply_adds > 2 * last.added_multiply_adds
    assert last.added_params > 5 * first.added_params
    assert first.stages[0].positions == 56 * 56 and last.stages[3].positions == 14 * 14
    fig = lessons_block.placement_view(128, "C,-,-,C")
    assert isinstance(fig, Figure) and "S2 128, S5 128" in fig.axes[2].get_title()


def test_placement_leaves_the_random_state_and_rejects_bad_masks():
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    lessons_block.placement_cost(32, "-,C,-,-", input_size=64)
    assert torch.equal(torch.rand(1), expected)
    with pytest.raises(ValueError, match="mask must be four"):
        lessons_block.placement_cost(32, "C,S,-,-")


def test_weight_spread_separates_class_from_noise():
    labels = torch.arange(4).repeat_interleave(50)
    by_class = 0.2 + 0.2 * labels[:, None].float() + torch.zeros(200, 8)
    spread = lessons_block.weight_spread(by_class, labels)
    assert spread.class_share == pytest.approx(1.0) and spread.class_range == pytest.approx(0.6)
    torch.manual_seed(0)
    noise = 0.5 + 0.1 * torch.randn(200, 8)
    spread = lessons_block.weight_spread(noise, labels)
    assert spread.class_share < 0.1 and spread.std == pytest.approx(0.1, rel=0.2)
    assert spread.low < 0.3 and spread.high > 0.7


def test_trained_weights_figure_titles_say_the_spread():
    labels = torch.arange(3).repeat_interleave(10)
    trained = torch.rand(30, 16)
    untrained = 0.5 + 0.01 * torch.randn(30, 16)
    fig = lessons_block.trained_weights_figure(trained, untrained, labels, ["a", "b", "c"])
    assert fig.axes[0].get_title().startswith("trained weights spread")
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["a", "b", "c"]
    named = lessons_block.trained_weights_figure(trained, untrained, labels, ["a", "b", "c"],
                                                 untrained_name="untrained, BN set")
    assert named.axes[0].get_legend().get_texts()[0].get_text().startswith("untrained, BN set: ")
    assert fig.axes[0].get_legend().get_texts()[0].get_text().startswith("untrained: ")
    assert fig._suptitle is None and len(fig.axes[3].get_lines()) == 2
    # a second baseline: its own histogram outline and class-range line, and a figure title
    reference = 0.5 + 0.05 * torch.randn(30, 16)
    both = lessons_block.trained_weights_figure(trained, untrained, labels, ["a", "b", "c"],
                                                reference=reference, reference_name="other",
                                                title="one block, 30 images")
    assert both._suptitle.get_text() == "one block, 30 images"
    lines = [line.get_label() for line in both.axes[3].get_lines()]
    assert len(lines) == 3 and lines[2].startswith("other: median ")
    legend = [t.get_text() for t in both.axes[0].get_legend().get_texts()]
    assert len(legend) == 3 and legend[2].startswith("other: ")
    assert both.axes[0].get_title() == fig.axes[0].get_title()   # still against ``untrained``


def test_table2_fit_matches_both_entries():
    fit = lessons_block.table2_fit()
    assert round(fit["channel"] / 1e6, 1) == 28.1 and round(fit["position"] / 1e6, 1) == 26.2
    # the upper triangle alone is short of the channel entry by exactly C'M
    plain = lessons_block.block_multiply_adds(1024, 128, 196)
    assert fit["channel"] - plain == 128 * 129 // 2 * 196 - 128 * 128 * 196 + 1024 * 196


def test_block_view_recomputes_with_the_image_and_the_block():
    first, other = lessons_block.trained_block(0), lessons_block.trained_block(1)
    assert first.class_name != other.class_name
    assert first.cov.shape == (32, 32) and first.weights.shape == (64,)
    assert not torch.allclose(first.cov, other.cov)
    assert not torch.allclose(first.weights, other.weights)
    early = lessons_block.trained_block(0, "layer1.2.attn")
    assert early.weights.shape == (16,)
    titles = {key: [ax.get_title() for ax in lessons_block.block_view(*key).axes]
              for key in ((0, "layer3.2.attn"), (1, "layer3.2.attn"), (0, "layer1.2.attn"))}
    assert titles[(0, "layer3.2.attn")][0] == "test image 0: Ankle boot"
    assert titles[(0, "layer3.2.attn")] != titles[(1, "layer3.2.attn")]
    assert titles[(0, "layer1.2.attn")][-1].startswith("16 channel weights")
    assert titles[(0, "layer3.2.attn")][-1].startswith("64 channel weights")


def test_gate_probe_figure_titles_give_the_spread():
    labels = torch.arange(4).repeat_interleave(5)
    weights = {"SE": torch.full((20, 3), 0.5), "GSoP": 0.5 + 0.1 * torch.randn(20, 3)}
    fig = lessons_block.gate_probe_figure(weights, labels, {"SE": 0.25, "GSoP": 0.6})
    assert fig.axes[0].get_title() == ("SE: largest std 0.0000\n"
                                       "linear probe on all 3 weights 0.250 (chance 0.250)")
    assert not fig.axes[1].get_title().startswith("GSoP: largest std 0.0000")
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["0", "1", "2", "3"]
    named = lessons_block.gate_probe_figure(weights, labels, {"SE": 0.25, "GSoP": 0.6},
                                            ["a", "b", "c", "d"])
    assert [t.get_text() for t in named.legends[0].get_texts()] == ["a", "b", "c", "d"]
    # four gates in two rows (as they are, centred), the figure's title as given
    four = {f"{g}, {k}": w for k in ("uncentred", "centred") for g, w in weights.items()}
    grid = lessons_block.gate_probe_figure(four, labels, dict.fromkeys(four, 0.3), ncols=2,
                                           title="as they are (top) and centred (bottom)")
    assert len(grid.axes) == 4
    assert grid._suptitle.get_text() == "as they are (top) and centred (bottom)"
    rows = sorted({round(ax.get_position().y0, 3) for ax in grid.axes})
    assert len(rows) == 2 and grid.axes[2].get_title().startswith("SE, centred: largest std 0.0000")


def test_block_view_labels_the_matrices_rows_and_columns():
    axes = lessons_block.block_view(0, "layer3.2.attn").axes
    heatmaps = [ax for ax in axes if ax.get_xlabel() == "column j"]
    assert len(heatmaps) == 2 and all(ax.get_ylabel().startswith("row i") for ax in heatmaps)
    assert all(ax.axison for ax in heatmaps)
    # the titles' std is over one image's columns; the colorbars say what the colours are
    assert all("per-row std over\ncolumns, this image: " in ax.get_title() for ax in heatmaps)
    labels = {ax.get_ylabel() for ax in axes}
    assert {"covariance entry", "row-normalised entry"} <= labels


def test_placement_cost_has_imagenet_quarter_head_by_default():
    # Table 4's networks classify ImageNet-1/4K's 250 classes (Sec. 4), not ImageNet-1K's 1000
    quarter = lessons_block.placement_cost(64, "-,-,C,-", input_size=64)
    full = lessons_block.placement_cost(64, "-,-,C,-", input_size=64, num_classes=1000)
    assert quarter.num_classes == 250 and full.num_classes == 1000
    assert full.vanilla_params - quarter.vanilla_params == 750 * (2048 + 1)   # the FC's rows
    assert full.params - quarter.params == 750 * (2048 + 1)
    assert full.added_params == quarter.added_params
    titles = [lessons_block.placement_figure(cost)._suptitle.get_text() for cost in (quarter, full)]
    assert "(250-class head, ImageNet-1/4K)" in titles[0] and "(1000-class head)" in titles[1]


def test_block_view_title_states_what_the_row_bn_did():
    titles = [lessons_block.block_view(image, "layer3.2.attn")._suptitle.get_text()
              for image in (0, 1)]
    assert all(": row-wise BN lifts the per-row std " in t for t in titles)
    assert titles[0] != titles[1]
    tb = lessons_block.trained_block(0, "layer3.2.attn")
    low, high = tb.cov_bn.std(dim=1).aminmax()
    assert titles[0].endswith(f" to {low:.2f}-{high:.2f}")


def test_placement_cost_reads_the_rank_before_the_relu():
    # S2's block input is a 1x1 conv of 64 channels: before the ReLU its reduced map has rank 64
    cost = lessons_block.placement_cost(256, "C,-,-,-", input_size=64)
    s2 = cost.stages[0]
    assert s2.positions == 16 * 16 and s2.rank_linear == 64 and s2.rank > 64
    assert cost.stages[1].rank_linear is None


def test_trained_weights_figure_draws_the_shuffled_floors():
    labels = torch.arange(3).repeat_interleave(10)
    trained, untrained = torch.rand(30, 16), 0.5 + 0.01 * torch.randn(30, 16)
    plain = lessons_block.trained_weights_figure(trained, untrained, labels, ["a", "b", "c"])
    fig = lessons_block.trained_weights_figure(trained, untrained, labels, ["a", "b", "c"],
                                               floors={"trained": (0.2, 0.3),
                                                       "untrained": (0.05, 0.07)})
    right = fig.axes[3]
    flat = [line for line in right.get_lines() if len(line.get_ydata()) == 2]   # axhline: 2 points
    assert sorted(line.get_ydata()[0] for line in flat) == pytest.approx([0.05, 0.2])
    assert all(line.get_linestyle() not in ("-", "None") for line in flat)   # dashed, one per model
    assert len(right.patches) == 2                     # the bands up to the 95th percentile
    texts = [t.get_text() for t in right.get_legend().get_texts()]
    assert texts[-1].startswith("shuffled labels") and ", shuffled 0.200" in texts[0]
    assert "each model sorted" in right.get_xlabel()
    assert not [line for line in plain.axes[3].get_lines() if len(line.get_ydata()) == 2]
    # every model's curve solid, in its own colour; each floor's value written in that colour
    reference = 0.5 + 0.05 * torch.randn(30, 16)
    three = lessons_block.trained_weights_figure(trained, untrained, labels, ["a", "b", "c"],
                                                 reference=reference, reference_name="other",
                                                 floors={"trained": (0.2, 0.3),
                                                         "other": (0.011, 0.013)}).axes[3]
    curves = [line for line in three.get_lines() if len(line.get_ydata()) == 16]
    assert [line.get_linestyle() for line in curves] == ["-"] * 3
    assert len({line.get_color() for line in curves}) == 3
    written = {t.get_text(): t.get_color() for t in three.texts}
    assert written == {"0.200": curves[0].get_color(), "0.011": curves[2].get_color()}
    assert three.get_yscale() == "log" and three.get_ylim()[0] < 0.011
    assert not [t for t in plain.axes[3].get_legend().get_texts() if "shuffled" in t.get_text()]


def test_channel_weights_reads_the_tap():
    torch.manual_seed(0)
    block = GSoPChannel(3, rd_channels=8).eval()
    x = torch.randn(5, 3, 8, 8)
    w = lessons_block.channel_weights(block, x)
    with torch.no_grad():
        expected = (block(x) / x)[:, :, 0, 0]            # x * w, so w = output / x where x != 0
    assert w.shape == (5, 3)
    torch.testing.assert_close(w, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(w, lessons_block.channel_weights(block, 2 * x + 1))


def test_gate_probe_title_gives_ranges_and_single_values():
    accuracy = {"SE, uncentred": [0.14, 0.12], "SE, centred": [0.125],
                "GSoP channel, uncentred": [0.5, 0.4], "GSoP channel, centred": [0.6, 0.6]}
    title = lessons_block.gate_probe_title(accuracy)
    assert title.startswith("probe on 3 untrained weights, seeds 0-1: SE 0.120-0.140 -> 0.125 ")
    assert "GSoP 0.400-0.500 -> 0.600 (chance 0.125)" in title


def test_spread_title_lists_each_model_in_order():
    title = lessons_block.spread_title("one block", {"trained": 0.264, "fresh": 0.126},
                                       {"trained": 0.502, "fresh": 0.584})
    assert title.startswith("one block: class range above the shuffled floor "
                            "0.26 (trained) / 0.13 (fresh);")
    assert "the class explains 50% / 58% of a channel's variance" in title


def test_placement_figure_marks_the_width_bound():
    # S2's block reads bn3(conv3(64 channels)): before its ReLU the reduced map's covariance has
    # rank at most 64, which the spectrum panel marks with a dashed line in S2's colour
    cost = lessons_block.placement_cost(128, "C,-,-,-")
    s2 = cost.stages[0]
    assert (s2.width, s2.rank_linear) == (64, 64) and s2.rank == 128
    spectrum = lessons_block.placement_figure(cost).axes[2]
    dashed = {line.get_label(): line for line in spectrum.lines if line.get_linestyle() == "--"}
    assert list(dashed) == ["S2 width bound (before ReLU) = 64"]
    assert dashed["S2 width bound (before ReLU) = 64"].get_xdata()[0] == 64
    assert dashed["S2 width bound (before ReLU) = 64"].get_color() == spectrum.lines[0].get_color()
    # at S4 (width 256, M - 1 = 195) the width bound is not the binding one: no dashed line
    s4_only = lessons_block.placement_figure(lessons_block.placement_cost(128, "-,-,C,-")).axes[2]
    assert not [line for line in s4_only.lines if line.get_linestyle() == "--"]


def test_placement_model_is_what_placement_cost_reads():
    model, image, shapes = lessons_block.placement_model(128, "C,-,-,-")
    assert image.shape == (1, 3, 224, 224) and shapes[0] == (256, 56 * 56)
    assert not model.training and model.layer1[-1].attn.rd_channels == 128


def test_the_widget_tasks_answers():
    # notebook 03's "before you move it" answers, recomputed by the widgets' callbacks' code
    last, first = (lessons_block.trained_block(0, b) for b in ("layer3.2.attn", "layer1.2.attn"))
    zero = (last.cov.diagonal() == 0).nonzero().flatten().tolist()
    assert zero == [2, 24] and last.cov_bn[zero].std(dim=1).max() == 0   # constant after the BN
    assert (first.cov.diagonal() > 0).all()
    assert f"{first.cov_bn.std(dim=1).min():.2f}" == "0.11"
    at128, at512 = (lessons_block.placement_cost(c, "C,C,C,C") for c in (128, 512))
    assert [s.rank for s in at128.stages] == [128] * 4
    assert [s.rank_bound for s in at128.stages] == [128] * 4
    widths = [line.get_label() for line in lessons_block.placement_figure(at128).axes[2].lines
              if line.get_linestyle() == "--"]
    assert widths == ["S2 width bound (before ReLU) = 64"]
    assert [s.rank for s in at512.stages] == [512, 512, 195, 195]
    assert at512.stages[0].rank_linear == 64


def test_reach_figure_shows_where_a_change_arrives():
    near, far = torch.zeros(14, 14), torch.full((14, 14), 0.1)
    near[:6, :6] = 0.5                                        # reached only near the corner
    fig = lessons_block.reach_figure({"2 convs": near, "one block": far})
    titles = [ax.get_title() for ax in fig.axes[:2]]
    assert titles[0] == "2 convs\n0 at (13, 13)\n18% moved"
    assert titles[1] == "one block\n0.1 at (13, 13)\n100% moved"
    shown = fig.axes[0].images[0].get_array()
    assert shown.mask[13, 13] and not shown.mask[0, 0]        # unmoved positions are masked (white)
