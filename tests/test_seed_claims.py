"""gsoplib.viz.seed_claims: the std rule, Welch's t-test on a few seeds and the claims table
that notebook 04 prints."""

from __future__ import annotations

import math
import statistics

import pytest

from gsoplib.viz.lessons_sqrtm import t_two_sided_p
from gsoplib.viz.seed_claims import (
    SeedComparison,
    benjamini_hochberg,
    claims_markdown,
    claims_table,
    compare_seeds,
    p_text,
)

# benchmarks/results/fig3-cpu.json, GM-SOP Fig. 3 in small: N = 4 and N = 8 at K = 1 (to 0.1)
N4_K1 = [92.6, 81.9, 86.2]
N8_K1 = [82.4, 80.0, 75.0]


def test_welch_by_hand():
    c = compare_seeds(N4_K1, N8_K1)
    va, vb = statistics.variance(N4_K1) / 3, statistics.variance(N8_K1) / 3
    t = (statistics.mean(N4_K1) - statistics.mean(N8_K1)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    assert math.isclose(c.t, t) and math.isclose(c.df, df)
    assert math.isclose(c.p, t_two_sided_p(t, df))
    assert 2 < df < 4 and 0.1 < c.p < 0.15          # beyond the std rule, but not p < 0.05
    assert c.std_a == pytest.approx(statistics.stdev(N4_K1)) and (c.n_a, c.n_b) == (3, 3)


def test_equal_variances_and_sizes_give_students_t():
    """With n_a = n_b and equal variances Welch's df is 2(n - 1), Student's pooled test."""
    a, b = [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]
    c = compare_seeds(a, b)
    assert math.isclose(c.df, 4.0) and math.isclose(c.t, -1 / math.sqrt(2 / 3))


def test_the_std_rule_and_the_verdicts():
    resolved = compare_seeds(N4_K1, N8_K1)
    assert resolved.beyond_noise and resolved.gap > 0
    assert resolved.verdict().startswith("holds: gap 7.77 > larger std 5.38; p = 0.12, not < 0.05")
    assert compare_seeds(N8_K1, N4_K1).verdict().startswith("reversed: gap 7.77")
    noise = compare_seeds([55.9, 93.7, 95.2], N8_K1)
    assert not noise.beyond_noise
    assert noise.verdict().startswith("seed noise: gap 2.47 < larger std 22.27")
    clear = compare_seeds([97.0, 97.2, 97.1], [80.0, 80.5, 79.8])
    assert clear.p < 1e-3 and "not < 0.05" not in clear.verdict()
    many = SeedComparison(1.0, 2.0, 50, 0.0, 2.0, 50, 2.5, 98.0, 0.014)
    assert not many.beyond_noise and many.verdict().startswith("holds by Welch (p = 0.014)")


def test_measured_text_and_p_text():
    c = compare_seeds(N4_K1, N8_K1)
    assert c.measured("N = 4", "N = 8") == "N = 4 86.90 +- 5.38 vs N = 8 79.13 +- 3.78 (3, 3 seeds)"
    texts = [p_text(p) for p in (0.1203, 0.0832, 0.0101, 0.003)]
    assert texts == ["0.12", "0.083", "0.010", "0.0030"]


def test_bad_input_is_one_sentence():
    with pytest.raises(ValueError, match="two or more seeds"):
        compare_seeds([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="same value"):
        compare_seeds([1.0, 1.0], [2.0, 2.0])
    with pytest.raises(ValueError, match="4 cells"):
        claims_table([("a", "b", "c")])


def test_claims_table_wraps_each_column():
    text = claims_table([("a claim long enough to wrap onto a second line", "paper", "m", "v")],
                        widths=(20, 8, 9, 8))
    lines = text.splitlines()
    assert lines[0].split(" | ") == ["claim" + " " * 15, "paper   ", "measured ", "verdict"]
    assert set(lines[1]) <= {"-", "+"} and len(lines[1]) == 20 + 8 + 9 + 8 + 9
    assert lines[2].startswith("a claim long enough ") and lines[3].startswith("to wrap onto a")
    assert all(len(line) <= len(lines[1]) for line in lines)



def test_claims_markdown_is_one_table_line_per_row_with_pipes_escaped():
    text = claims_markdown([("a above b", "Fig. 2", "mean |omega - 1/K| 0.37\nof 0.375", "holds"),
                            ("c", "d", "e", "f")], header=("w", "x", "y", "z"))
    lines = text.splitlines()
    assert lines[:2] == ["| w | x | y | z |", "|---|---|---|---|"] and len(lines) == 4
    assert lines[2] == "| a above b | Fig. 2 | mean \\|omega - 1/K\\| 0.37 of 0.375 | holds |"
    assert all(line.replace("\\|", "").count("|") == 5 for line in lines)   # four cells each
    with pytest.raises(ValueError, match="4 cells"):
        claims_markdown([("a", "b", "c")])

# --- stratified_permutation_test --------------------------------------------------------------

def _brute_force_p(x, y, strata):
    """Every permutation inside every stratum (all of them, not only the distinct ones)."""
    import itertools

    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    groups = [np.flatnonzero(np.asarray(strata) == s) for s in sorted(set(strata))]
    centred = [x[g] - x[g].mean() for g in groups]
    observed = sum(c @ y[g] for c, g in zip(centred, groups))
    per = [[np.asarray(p) @ y[g] for p in itertools.permutations(c)]
           for c, g in zip(centred, groups)]
    totals = [sum(combo) for combo in itertools.product(*per)]
    return sum(abs(t) >= abs(observed) - 1e-9 for t in totals) / len(totals)


def test_permutation_known_answer_one_stratum():
    """x = 0, 0, 0, 1, 1, 1 against y rising with it: of the 20 distinct arrangements only the
    observed one and its mirror reach |T| = 4.5, so p = 2 / 20."""
    from gsoplib.viz.seed_claims import stratified_permutation_test

    result = stratified_permutation_test([0, 0, 0, 1, 1, 1], [1, 2, 3, 4, 5, 6])
    assert result.p == pytest.approx(0.1) and result.arrangements == 20
    assert result.statistic == pytest.approx(4.5) and result.slope == pytest.approx(3.0)
    assert (result.runs, result.strata, result.draws) == (6, 1, 0)


def test_exact_equals_brute_force_with_ties_and_two_strata():
    from gsoplib.viz.seed_claims import stratified_permutation_test

    x = [1, 1, 2, 4, 1, 2, 2, 3, 3]
    y = [3.0, 1.0, 4.0, 9.0, 2.0, 6.0, 5.0, 8.0, 7.5]
    strata = ["a", "a", "a", "a", "b", "b", "b", "b", "b"]
    result = stratified_permutation_test(x, y, strata)
    assert result.p == pytest.approx(_brute_force_p(x, y, strata), abs=1e-12)
    assert result.arrangements == 12 * 30                     # 4!/2! and 5!/(2! 2!)
    assert 0 < result.p < 0.2


def test_slope_is_the_within_stratum_least_squares_slope():
    import numpy as np

    from gsoplib.viz.seed_claims import stratified_permutation_test

    rng = np.random.default_rng(3)
    x = np.tile([1.0, 2.0, 3.0], 4)
    strata = np.repeat([0, 1, 2, 3], 3)
    y = 5 * strata + 2.0 * x + rng.normal(0, 0.5, 12)
    design = np.column_stack([x] + [strata == s for s in range(4)]).astype(float)
    fitted = np.linalg.lstsq(design, y, rcond=None)[0][0]
    assert stratified_permutation_test(x, y, strata).slope == pytest.approx(fitted)


def test_monte_carlo_agrees_with_exact_and_is_reproducible():
    import numpy as np

    from gsoplib.viz.seed_claims import stratified_permutation_test

    x = [1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 4, 4]
    y = [5.0, 4.0, 6.0, 7.0, 5.5, 9.0, 3.0, 6.0, 5.0, 8.0, 6.5, 9.5]
    strata = [0] * 6 + [1] * 6
    exact = stratified_permutation_test(x, y, strata)
    mc = stratified_permutation_test(x, y, strata, draws=40_000, seed=1)
    se = math.sqrt(exact.p * (1 - exact.p) / 40_000)
    assert abs(mc.p - exact.p) < 4 * se and mc.arrangements == 0 and mc.draws == 40_000
    assert stratified_permutation_test(x, y, strata, draws=40_000, seed=1).p == mc.p
    # by hand, in the documented order: sorted strata, Generator.permuted row by row
    rng = np.random.default_rng(1)
    null = np.zeros(40_000)
    for s in (0, 1):
        rows = [i for i in range(12) if strata[i] == s]
        xc = np.asarray(x, float)[rows] - np.mean(np.asarray(x, float)[rows])
        null += rng.permuted(np.tile(xc, (40_000, 1)), axis=1) @ np.asarray(y)[rows]
    assert mc.p == (1 + (np.abs(null) >= abs(mc.statistic) - 1e-9).sum()) / 40_001


def test_strata_with_one_x_are_left_out_and_bad_input_is_one_sentence():
    from gsoplib.viz.seed_claims import stratified_permutation_test

    with_constant = stratified_permutation_test([0, 0, 0, 1, 1, 1, 5, 5], [1, 2, 3, 4, 5, 6, 0, 9],
                                                [0] * 6 + [1, 1])
    assert with_constant.p == pytest.approx(0.1) and with_constant.strata == 1
    assert with_constant.runs == 6
    assert stratified_permutation_test([0, 1, 0, 1], [1.0, 1.0, 1.0, 1.0]).p == 1.0   # T = 0
    with pytest.raises(ValueError, match="one value per run"):
        stratified_permutation_test([0, 1], [1.0])
    with pytest.raises(ValueError, match="one value in every stratum"):
        stratified_permutation_test([1, 1], [1.0, 2.0])
    with pytest.raises(ValueError, match="too many to count"):
        stratified_permutation_test(list(range(12)), list(range(12)), max_exact=1000)
    text = stratified_permutation_test([0, 0, 0, 1, 1, 1], [1, 2, 3, 4, 5, 6]).text("doubling")
    assert text == "slope +3.0 per doubling; p = 0.10 (exact, 20 arrangements)"


def test_benjamini_hochberg_by_hand_and_its_edges():
    # m = 4: sorted 0.0077, 0.029, 0.036, 0.077 -> 4p/rank 0.0308, 0.058, 0.048, 0.077,
    # then the running minimum from the top: 0.0308, 0.048, 0.048, 0.077 (input order kept)
    q = benjamini_hochberg([0.029, 0.0077, 0.077, 0.036])
    assert q == pytest.approx([0.048, 0.0308, 0.077, 0.048])
    assert all(a >= p for a, p in zip(q, [0.029, 0.0077, 0.077, 0.036]))
    assert benjamini_hochberg([0.5]) == [0.5]
    # the larger p's adjusted value caps the smaller's
    assert benjamini_hochberg([0.9, 0.95]) == pytest.approx([0.95, 0.95])
    assert max(benjamini_hochberg([0.01] * 3 + [0.9] * 97)) <= 1.0
    assert benjamini_hochberg([0.01] * 3 + [0.9] * 97)[0] == pytest.approx(0.01 * 100 / 3)
    with pytest.raises(ValueError):
        benjamini_hochberg([])
    with pytest.raises(ValueError):
        benjamini_hochberg([0.1, 1.2])
