"""Claims judged on a handful of seeds, as notebook 04 prints them.

    compare_seeds(a, b)   two settings' accuracies over their seeds: means and standard
                          deviations, the project's std rule, Welch's t-test (two-sided p)
    claims_table(rows)    claim | paper | measured | verdict, as aligned plain text

The std rule is ``benchmarks/compare.py``'s: two means are told apart only when they differ by
more than the larger of their two (sample) standard deviations. Welch's test adds what the rule
does not say: how likely a gap that large is from seed noise alone, for two settings of possibly
unequal variance. With three seeds a side a gap must be large against the spread to reach
p < 0.05, so the verdict prints both.
"""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from .lessons_sqrtm import t_two_sided_p


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

    def verdict(self) -> str:
        """Whether 'a above b' holds, by the std rule and by Welch's p: 'holds' or 'reversed'
        (beyond the rule), with p and, when p >= 0.05, that the seeds do not reach it; or
        'seed noise' (within the rule)."""
        direction = "holds" if self.gap > 0 else "reversed"
        larger = max(self.std_a, self.std_b)
        p = f"p = {p_text(self.p)}"
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
    df = (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a - 1) + (s_b^2/n_b)^2/(n_b - 1)),
    and its two-sided p-value (:func:`gsoplib.viz.lessons_sqrtm.t_two_sided_p`).

    Args:
        a, b: at least two values each, not all equal on both sides.
    Returns:
        :class:`SeedComparison`.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"compare_seeds needs two or more seeds a side, got {len(a)} and {len(b)}")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        raise ValueError("compare_seeds: every seed gives the same value on both sides")
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return SeedComparison(statistics.mean(a), statistics.stdev(a), len(a), statistics.mean(b),
                          statistics.stdev(b), len(b), t, df, t_two_sided_p(t, df))


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


__all__ = ["HEADER", "SeedComparison", "claims_table", "compare_seeds", "p_text"]
