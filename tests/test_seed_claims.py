"""gsoplib.viz.seed_claims: the std rule, Welch's t-test on a few seeds and the claims table
that notebook 04 prints."""

from __future__ import annotations

import math
import statistics

import pytest

from gsoplib.viz.lessons_sqrtm import t_two_sided_p
from gsoplib.viz.seed_claims import SeedComparison, claims_table, compare_seeds, p_text

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
