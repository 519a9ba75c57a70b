"""Claims judged on a handful of seeds, as notebook 04 prints them.

    compare_seeds(a, b)   two settings' accuracies over their seeds: means and standard
                          deviations, the project's std rule, Welch's t-test (two-sided p)
    claims_table(rows)    claim | paper | measured | verdict, as aligned plain text
    claims_markdown(rows) the same rows as a Markdown table
    benjamini_hochberg(pvalues)
                          the Benjamini-Hochberg adjusted p-values of a family of tests
    stratified_permutation_test(x, y, strata)
                          does y move with x inside each stratum (e.g. top-1 with N at
                          fixed K)? The pooled within-stratum slope and a permutation p,
                          exact where the arrangements can be counted, else Monte Carlo

The std rule is ``benchmarks/compare.py``'s: two means are told apart only when they differ by
more than the larger of their two (sample) standard deviations. Welch's test adds what the rule
does not say: how likely a gap that large is from seed noise alone, for two settings of possibly
unequal variance. With three seeds a side a gap must be large against the spread to reach
p < 0.05, so the verdict prints both.
"""

from __future__ import annotations

import itertools
import math
import statistics
import textwrap
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from .lessons_sqrtm import t_two_sided_p, welch_t


@dataclass(frozen=True)
class SeedComparison:
    """Setting a against setting b, each measured over its seeds (see :func:`compare_seeds`)."""

    mean_a: float
    std_a: float
    n_a: int
    mean_b: float
    std_b: float
    n_b: int
    t: float
    df: float
    p: float

    @property
    def gap(self) -> float:
        """mean_a - mean_b."""
        return self.mean_a - self.mean_b

    @property
    def beyond_noise(self) -> bool:
        """The std rule: |mean_a - mean_b| > max(std_a, std_b)."""
        return abs(self.gap) > max(self.std_a, self.std_b)

    def measured(self, a: str = "", b: str = "", digits: int = 2) -> str:
        """'a 96.93 +- 0.56 vs b 86.92 +- 5.38 (3, 3 seeds)'."""
        def one(name: str, mean: float, std: float) -> str:
            return f"{name + ' ' if name else ''}{mean:.{digits}f} +- {std:.{digits}f}"
        return (f"{one(a, self.mean_a, self.std_a)} vs {one(b, self.mean_b, self.std_b)} "
                f"({self.n_a}, {self.n_b} seeds)")

    def verdict(self, direction_only: bool = False) -> str:
        """Whether 'a above b' holds, by the std rule and by Welch's p: 'holds' or 'reversed'
        (beyond the rule), with p and, when p >= 0.05, that the seeds do not reach it; or
        'seed noise' (within the rule).

        With ``direction_only=True`` a gap beyond the std rule whose p is >= 0.05 reads
        'direction only (a above b / a below b; std rule passed, p = ...)' instead of 'holds' or
        'reversed': with 3 seeds a side the rule alone calls two identical normal settings
        different in about a fifth of draws."""
        direction = "holds" if self.gap > 0 else "reversed"
        larger = max(self.std_a, self.std_b)
        p = f"p = {p_text(self.p)}"
        if direction_only and self.beyond_noise and self.p >= 0.05:
            side = "above" if self.gap > 0 else "below"
            return (f"direction only ({side}; std rule passed: gap {abs(self.gap):.2f} > "
                    f"larger std {larger:.2f}; {p})")
        if not self.beyond_noise:
            if self.p < 0.05:
                return f"{direction} by Welch ({p}), within the std rule ({abs(self.gap):.2f} "\
                       f"< {larger:.2f})"
            return f"seed noise: gap {abs(self.gap):.2f} < larger std {larger:.2f}; {p}"
        tail = "" if self.p < 0.05 else f", not < 0.05 with {self.n_a} and {self.n_b} seeds"
        return f"{direction}: gap {abs(self.gap):.2f} > larger std {larger:.2f}; {p}{tail}"


def compare_seeds(a: Sequence[float], b: Sequence[float]) -> SeedComparison:
    """Setting a (its seeds' values, e.g. test top-1 %) against setting b.

    Means and sample standard deviations (n - 1); Welch's t = (mean_a - mean_b) /
    sqrt(s_a^2/n_a + s_b^2/n_b) with the Welch-Satterthwaite degrees of freedom
    (:func:`gsoplib.viz.lessons_sqrtm.welch_t`) and its two-sided p-value
    (:func:`gsoplib.viz.lessons_sqrtm.t_two_sided_p`).

    Args:
        a, b: at least two values each, not all equal on both sides.
    Returns:
        :class:`SeedComparison`.
    """
    t, df = welch_t(a, b)
    return SeedComparison(statistics.mean(a), statistics.stdev(a), len(a), statistics.mean(b),
                          statistics.stdev(b), len(b), t, df, t_two_sided_p(t, df))


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values of m tests, in the input's order.

    With the p-values sorted, p_(1) <= ... <= p_(m), the adjusted value of the i-th smallest is
    q_(i) = min_{j >= i} min(1, m p_(j) / j) (Benjamini and Hochberg 1995, the step-up procedure
    written as adjusted values): rejecting every test with q <= alpha keeps the expected share of
    false discoveries among the rejections at or below alpha for independent tests.

    Args:
        pvalues: m >= 1 values in [0, 1].
    Returns:
        m adjusted values, each >= its p-value, in the same order.
    """
    m = len(pvalues)
    if m == 0 or any(not 0.0 <= p <= 1.0 for p in pvalues):
        raise ValueError("benjamini_hochberg needs one or more p-values in [0, 1], "
                         f"got {pvalues!r}")
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 1.0
    for rank in range(m, 0, -1):                       # from the largest p down: the running min
        i = order[rank - 1]
        running = min(running, m * pvalues[i] / rank)
        adjusted[i] = running
    return adjusted


def p_text(p: float) -> str:
    """A p-value in two significant digits, trailing zeros kept: 0.10, 0.083, 0.010."""
    return f"{p:.2f}" if p >= 0.1 else f"{p:#.2g}"


HEADER = ("claim", "paper", "measured", "verdict")


def claims_table(
    rows: Sequence[Sequence[str]],
    *,
    header: Sequence[str] = HEADER,
    widths: Sequence[int] = (30, 22, 38, 40),
) -> str:
    """Rows of text cells as a plain-text table: each cell wrapped at spaces to its column's
    width (a longer word overflows it), the columns joined by ' | ', a rule under the header and
    a blank line between rows."""
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"claims_table: every row needs {len(header)} cells")

    def lines(row: Sequence[str]) -> list[str]:
        cells = [textwrap.wrap(str(text), width, break_long_words=False) or [""]
                 for text, width in zip(row, widths)]
        height = max(len(c) for c in cells)
        return [" | ".join(f"{(c[i] if i < len(c) else ''):<{w}}" for c, w in zip(cells, widths))
                .rstrip() for i in range(height)]

    rule = "-+-".join("-" * w for w in widths)
    body = ["\n".join(lines(row)) for row in rows]
    return "\n".join(lines(header) + [rule]) + "\n" + "\n\n".join(body)


def claims_markdown(rows: Sequence[Sequence[str]], *, header: Sequence[str] = HEADER) -> str:
    """The rows of :func:`claims_table` as a Markdown table, for ``IPython.display.Markdown``:
    one line per row, a ``|`` inside a cell escaped as ``\\|`` (so ``|omega - 1/K|`` stays in
    its cell) and line breaks as spaces.

    Examples:
        >>> print(claims_markdown([("a above b", "paper", "mean |x| 1", "holds")]))
        | claim | paper | measured | verdict |
        |---|---|---|---|
        | a above b | paper | mean \\|x\\| 1 | holds |
    """
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"claims_markdown: every row needs {len(header)} cells")

    def line(cells: Sequence[str]) -> str:
        texts = (str(c).replace("|", "\\|").replace("\n", " ") for c in cells)
        return "| " + " | ".join(texts) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(row) for row in rows)])


@dataclass(frozen=True)
class PermutationTest:
    """What :func:`stratified_permutation_test` found.

    statistic: T = sum over strata of sum_i (x_i - mean of x in its stratum) y_i.
    slope: T / sum_i (x_i - mean of x in its stratum)^2, the least-squares slope of y on x
        fitted inside the strata (one intercept per stratum, one common slope).
    p: two-sided, the share of equally likely arrangements with |T*| >= |T|.
    runs, strata: the values and strata that count (strata where x varies).
    arrangements: how many arrangements the exact p counts (0 for Monte Carlo).
    draws: Monte Carlo draws (0 when exact).
    """

    statistic: float
    slope: float
    p: float
    runs: int
    strata: int
    arrangements: int
    draws: int

    def text(self, per: str = "unit of x", digits: int = 1) -> str:
        """'slope -14.6 per doubling of N; p = 0.00021 (exact, 56,448,000 arrangements)'."""
        how = (f"exact, {self.arrangements:,} arrangements" if self.arrangements
               else f"Monte Carlo, {self.draws:,} draws")
        return f"slope {self.slope:+.{digits}f} per {per}; p = {p_text(self.p)} ({how})"


def _arrangement_sums(labels: np.ndarray, y: np.ndarray) -> np.ndarray:
    """sum_i label_{pi(i)} y_i over every distinct arrangement pi of the multiset ``labels``
    (one entry per arrangement, all equally likely under a uniform permutation)."""
    values = sorted(Counter(labels.tolist()).items())
    sums = np.zeros(1)
    free = np.arange(len(y))[None, :]                   # (arrangements so far, free positions)
    for value, count in values[:-1]:
        width = free.shape[1]
        chosen = np.array(list(itertools.combinations(range(width), count)))
        rest = np.array([[j for j in range(width) if j not in c] for c in chosen])
        sums = (sums[:, None] + value * y[free[:, chosen]].sum(-1)).ravel()
        free = free[:, rest].reshape(-1, width - count)
    return sums + values[-1][0] * y[free].sum(-1)


def _count(labels: np.ndarray) -> int:
    """The number of distinct arrangements of the multiset ``labels`` (multinomial)."""
    total = math.factorial(len(labels))
    for c in Counter(labels.tolist()).values():
        total //= math.factorial(c)
    return total


def stratified_permutation_test(
    x: Sequence[float],
    y: Sequence[float],
    strata: Sequence[Hashable] | None = None,
    *,
    draws: int | None = None,
    seed: int = 0,
    max_exact: int = 5_000_000,
) -> PermutationTest:
    """Does y move with x inside each stratum? A stratified permutation test of the slope.

    Null hypothesis: inside a stratum, y does not depend on x, so every arrangement of the
    stratum's x values among its runs is equally likely, independently across strata. The
    statistic is T = sum_strata sum_i (x_i - xbar_stratum) y_i, the numerator of the pooled
    within-stratum least-squares slope (``PermutationTest.slope`` = T / S_xx); the two-sided p
    is the probability of |T*| >= |T| under the null. A stratum whose x takes one value adds 0
    to T whatever the arrangement and is left out. Used for GM-SOP's Fig. 3 in small (top-1
    with N at fixed K, with K at fixed K/N; training speed with N and K).

    ``draws=None`` (exact): enumerate the distinct arrangements of each stratum's x
    (n! / prod c_v! of them, all equally likely), combine all strata but the largest by
    adding their contributions, and count |T*| >= |T| against the largest by a sorted search.
    Raises ValueError when the largest stratum or the product of the others has more than
    ``max_exact`` arrangements. ``draws=m`` (Monte Carlo): for each stratum in sorted order,
    ``numpy.random.default_rng(seed).permuted`` shuffles the centred x of m copies, row by
    row; p = (1 + #{|T*| >= |T|}) / (1 + m), never 0. Ties: |T*| counts when it is within
    1e-9 of |T| (relative), so that the observed arrangement counts itself.

    Args:
        x, y: one value each per run. strata: one label per run (None: a single stratum).
    Returns:
        :class:`PermutationTest`.
    """
    x_all, y_all = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    labels = list(strata) if strata is not None else [0] * len(x_all)
    if not len(x_all) == len(y_all) == len(labels):
        raise ValueError(f"stratified_permutation_test: x, y and strata need one value per run, "
                         f"got {len(x_all)}, {len(y_all)} and {len(labels)}")
    groups = []
    for key in sorted(set(labels)):
        rows = [i for i, s in enumerate(labels) if s == key]
        if len(set(x_all[rows].tolist())) > 1:
            centred = x_all[rows] - x_all[rows].mean()
            groups.append((centred, y_all[rows]))
    if not groups:
        raise ValueError("stratified_permutation_test: x takes one value in every stratum")
    statistic = float(sum(xc @ yy for xc, yy in groups))
    sxx = float(sum(xc @ xc for xc, _ in groups))
    tol = 1e-9 * max(1.0, float(sum(np.abs(xc) @ np.abs(yy) for xc, yy in groups)))
    level = abs(statistic) - tol
    runs = sum(len(yy) for _, yy in groups)
    if draws is not None:
        if draws < 1:
            raise ValueError(f"stratified_permutation_test: draws must be positive, got {draws}")
        rng = np.random.default_rng(seed)
        null = np.zeros(draws)
        for xc, yy in groups:
            null += rng.permuted(np.tile(xc, (draws, 1)), axis=1) @ yy
        p = (1 + int((np.abs(null) >= level).sum())) / (1 + draws)
        return PermutationTest(statistic, statistic / sxx, p, runs, len(groups), 0, draws)
    counts = [_count(xc) for xc, _ in groups]
    order = np.argsort(counts, kind="stable")
    others = math.prod(counts[i] for i in order[:-1])
    if counts[order[-1]] > max_exact or others > max_exact:
        raise ValueError(f"stratified_permutation_test: {math.prod(counts):,} arrangements are too "
                         f"many to count; pass draws= for a Monte Carlo p")
    partial = np.zeros(1)
    for i in order[:-1]:
        partial = (partial[:, None] + _arrangement_sums(*groups[i])[None, :]).ravel()
    last = np.sort(_arrangement_sums(*groups[order[-1]]))
    if level <= 0:
        p = 1.0
    else:
        above = len(last) - np.searchsorted(last, level - partial, side="left")
        below = np.searchsorted(last, -level - partial, side="right")
        p = float((above.sum() + below.sum()) / (len(partial) * len(last)))
    return PermutationTest(statistic, statistic / sxx, p, runs, len(groups),
                           len(partial) * len(last), 0)


__all__ = [
    "HEADER",
    "PermutationTest",
    "SeedComparison",
    "benjamini_hochberg",
    "claims_markdown",
    "claims_table",
    "compare_seeds",
    "p_text",
    "stratified_permutation_test",
]
