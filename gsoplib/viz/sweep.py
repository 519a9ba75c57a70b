"""Figures of where second-order pooling pays: the sweep (``benchmarks/compare.py --sweep``),
test accuracy against backbone size, a line per pooling, one panel per dataset; and the linear
probes on frozen features (``benchmarks/probes.py``), accuracy per backbone and pooling.
:func:`sweep_finding` and :func:`probe_finding` say in one title what a panel shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ._axes import _figure, _title
from .seed_claims import compare_seeds

#: One colour and marker per pooling, the same in every panel.
STYLES = {"GAP": ("tab:grey", "o"), "GSoP blocks + GAP": ("tab:blue", "s"),
          "iSQRT-COV head": ("tab:orange", "^"), "iSQRT-COV head x4": ("tab:red", "v"),
          "GM-SOP head": ("tab:green", "D"), "GAP + MLP": ("tab:purple", "P"),
          "GAP x4": ("tab:brown", "X")}


def sweep_figure(rows: Sequence[dict], backbones: Sequence[str], *,
                 datasets: Sequence[str] | None = None, poolings: Sequence[str] | None = None,
                 figsize: tuple[float, float] | None = None,
                 titles: Mapping[str, str] | None = None) -> Figure:
    """Test top-1 (mean and std over seeds, error bars) against the backbone, smallest first,
    a line per pooling, a panel per dataset. ``rows``: the sweep's summary (dataset, backbone,
    pooling, test_top1, test_top1_std, seeds, params); ``datasets`` and ``poolings`` pick which
    are drawn (default: all in ``rows``); ``titles``: a panel's title by dataset (default: the
    dataset and the seeds per point; :func:`sweep_finding` writes one that states the lead)."""
    if not rows:
        raise ValueError("sweep_figure needs at least one row")
    datasets = list(datasets or dict.fromkeys(r["dataset"] for r in rows))
    poolings = list(poolings or dict.fromkeys(r["pooling"] for r in rows))
    fig = _figure(figsize or (5.5 * len(datasets), 4.2), left=0.08, right=0.98, bottom=0.28,
                  top=0.86, wspace=0.25)
    axes = np.atleast_1d(fig.subplots(1, len(datasets)))
    x = np.arange(len(backbones))
    for ax, dataset in zip(axes, datasets):
        for j, pooling in enumerate(poolings):
            cells = {r["backbone"]: r for r in rows
                     if r["dataset"] == dataset and r["pooling"] == pooling}
            shown = [i for i, b in enumerate(backbones) if b in cells]
            if not shown:
                continue
            colour, marker = STYLES.get(pooling, (None, "o"))
            offset = (j - (len(poolings) - 1) / 2) * 0.06
            ax.errorbar(x[shown] + offset, [cells[backbones[i]]["test_top1"] for i in shown],
                        yerr=[cells[backbones[i]]["test_top1_std"] for i in shown], capsize=3,
                        marker=marker, color=colour, label=pooling)
        seeds = sorted({r["seeds"] for r in rows if r["dataset"] == dataset})
        ax.set_xticks(x, list(backbones), rotation=20, ha="right", fontsize=7)
        ax.set_xlabel("backbone, smallest first")
        ax.set_ylabel("test top-1 % (mean +- std)")
        ax.legend(fontsize=7, loc="lower right")
        _title(ax, (titles or {}).get(dataset)
               or f"{dataset}: {'/'.join(map(str, seeds))} seeds per point")
    return fig


def sweep_view(rows: Sequence[dict], backbones: Sequence[str], dataset: str, backbone: str,
               poolings: Sequence[str] | None = None,
               figsize: tuple[float, float] = (11.0, 4.0), title: str | None = None) -> Figure:
    """One dataset of the sweep and one backbone in detail: left, test top-1 against backbone
    size for the chosen ``poolings`` (as :func:`sweep_figure`, the chosen backbone shaded);
    right, every seed's top-1 on the chosen backbone, a column per pooling with its mean and
    std, titled with the best pooling's lead over GAP and the largest std beside it (a lead
    smaller than that is not read as one). ``rows``: the sweep's summary with ``runs``, each
    seed's top-1 (``benchmarks/results/sweep-*.json``); notebook 05's widget calls this.
    ``title``: the left panel's (default: the dataset; :func:`sweep_finding` states the lead)."""
    chosen = [r for r in rows if r["dataset"] == dataset and r["backbone"] == backbone
              and (poolings is None or r["pooling"] in poolings)]
    if not chosen:
        raise ValueError(f"no sweep rows for {dataset!r} on backbone {backbone!r}")
    poolings = [r["pooling"] for r in chosen]
    fig = _figure(figsize, left=0.07, right=0.98, bottom=0.3, top=0.86, wspace=0.28)
    lines, seeds = fig.subplots(1, 2, width_ratios=[1.4, 1])
    x = np.arange(len(backbones))
    for pooling in poolings:
        cells = {r["backbone"]: r for r in rows if r["dataset"] == dataset
                 and r["pooling"] == pooling}
        shown = [i for i, b in enumerate(backbones) if b in cells]
        colour, marker = STYLES.get(pooling, (None, "o"))
        lines.errorbar(x[shown], [cells[backbones[i]]["test_top1"] for i in shown],
                       yerr=[cells[backbones[i]]["test_top1_std"] for i in shown], capsize=3,
                       marker=marker, color=colour, label=pooling)
    where = list(backbones).index(backbone)
    lines.axvspan(where - 0.3, where + 0.3, color="gold", alpha=0.25, lw=0)
    lines.set_xticks(x, list(backbones), rotation=20, ha="right", fontsize=7)
    lines.set_xlabel("backbone, smallest first")
    lines.set_ylabel("test top-1 % (mean +- std)")
    lines.legend(fontsize=7, loc="lower right")
    _title(lines, title or f"{dataset}: accuracy against backbone size")
    for j, r in enumerate(chosen):
        colour, marker = STYLES.get(r["pooling"], (None, "o"))
        runs = r.get("runs") or [r["test_top1"]]
        seeds.scatter(np.full(len(runs), j), runs, color=colour, marker=marker, alpha=0.6)
        seeds.errorbar(j + 0.15, r["test_top1"], yerr=r["test_top1_std"], color="black",
                       marker="_", markersize=14, capsize=3)
    seeds.set_xticks(range(len(chosen)), poolings, rotation=20, ha="right", fontsize=7)
    seeds.set_ylabel("test top-1 % (each seed; mean +- std)")
    best = max(chosen, key=lambda r: r["test_top1"])
    gap = next((r for r in chosen if r["pooling"] == "GAP"), None)
    spread = max(r["test_top1_std"] for r in chosen)
    lead = (f"{best['pooling']} {best['test_top1'] - gap['test_top1']:+.1f} over GAP"
            if gap is not None and best is not gap else f"best: {best['pooling']}")
    _title(seeds, f"{backbone}: {lead} (largest std {spread:.1f})")
    return fig


#: Colours of the linear probes' poolings (gsoplib.linear_probe.POOLINGS).
PROBE_COLOURS = {"gap": "tab:grey", "covariance": "tab:blue", "root": "tab:orange"}


def probe_figure(rows: Sequence[dict], dataset: str, per_class: int, *,
                 backbones: Sequence[str] | None = None,
                 figsize: tuple[float, float] | None = None, title: str | None = None,
                 differences: bool = False) -> Figure:
    """Linear-probe test top-1 (mean +- std over the label draws) of one dataset at one number
    of labels a class: a group of bars per frozen backbone, a bar per pooling (GAP, covariance,
    Newton-Schulz root). ``rows``: ``benchmarks/results/probes-cpu.json``'s rows. ``title``:
    default, the dataset, the labels and the draws; :func:`probe_finding` states the leads.
    ``differences=True`` adds a right panel: per backbone and second-order pooling p, the paired
    differences d_i = top1_p,i - top1_GAP,i over the draws i (each row's ``runs``, the same
    labelled images for every pooling), their mean +- std in points. ``figsize`` default:
    (8, 3.6), or (12.5, 3.6) with the right panel."""
    chosen = [r for r in rows if r["dataset"] == dataset and r["per_class"] == per_class]
    if not chosen:
        raise ValueError(f"no probe rows for {dataset!r} at {per_class} labels a class")
    backbones = list(backbones or dict.fromkeys(r["backbone"] for r in chosen))
    poolings = list(dict.fromkeys(r["pooling"] for r in chosen))
    cell = {(r["backbone"], r["pooling"]): r for r in chosen}
    fig = _figure(figsize or ((12.5, 3.6) if differences else (8.0, 3.6)), left=0.07,
                  right=0.98, bottom=0.3, top=0.86, wspace=0.25)
    ax, right = fig.subplots(1, 2, width_ratios=[3, 2]) if differences else (fig.subplots(), None)
    width = 0.8 / len(poolings)
    for j, pooling in enumerate(poolings):
        shown = [i for i, b in enumerate(backbones) if (b, pooling) in cell]
        ax.bar([i + (j - (len(poolings) - 1) / 2) * width for i in shown],
               [cell[(backbones[i], pooling)]["test_top1"] for i in shown], width,
               yerr=[cell[(backbones[i], pooling)]["test_top1_std"] for i in shown], capsize=2,
               color=PROBE_COLOURS.get(pooling), label=pooling)
    chance = 100 / chosen[0]["classes"]
    ax.axhline(chance, color="black", lw=0.8, ls=":", label="chance")
    ax.set_xticks(range(len(backbones)), backbones, rotation=12, ha="right", fontsize=7)
    ax.set_ylabel("probe test top-1 % (mean +- std)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncols=4, loc="upper left")
    seeds = sorted({r["seeds"] for r in chosen})
    _title(ax, title or f"{dataset}: linear probes on frozen features, {per_class} labels a "
                        f"class, {'/'.join(map(str, seeds))} draws")
    if right is not None:
        others = [p for p in poolings if p != "gap"]
        step = 0.8 / max(len(others), 1)
        for j, pooling in enumerate(others):
            shown = [i for i, b in enumerate(backbones)
                     if (b, pooling) in cell and (b, "gap") in cell]
            paired = [np.subtract(cell[(backbones[i], pooling)]["runs"],
                                  cell[(backbones[i], "gap")]["runs"]) for i in shown]
            right.bar([i + (j - (len(others) - 1) / 2) * step for i in shown],
                      [d.mean() for d in paired], step,
                      yerr=[d.std(ddof=1) if len(d) > 1 else 0.0 for d in paired], capsize=2,
                      color=PROBE_COLOURS.get(pooling), label=f"{pooling} - gap")
        right.axhline(0, color="black", lw=0.8)
        right.set_xticks(range(len(backbones)), backbones, rotation=12, ha="right", fontsize=7)
        right.set_ylabel("minus GAP, points (mean +- std)")
        right.legend(fontsize=7)
        _title(right, "paired by draw: second-order pooling minus GAP")
    return fig


def sweep_finding(rows: Sequence[dict], backbones: Sequence[str], dataset: str,
                  poolings: Sequence[str] | None = None, test: str = "std",
                  adjusted: Mapping[tuple[str, str], float] | None = None,
                  family: str = "") -> str:
    """What one dataset of the sweep shows against GAP, as a title. For each pooling p of
    ``poolings`` (default: all but GAP) and backbone b, the lead l = mean_p - mean_GAP counts
    when |l| > max(std_p, std_GAP), the claims table's rule (the std over seeds; with three seeds
    a side it means Welch's |t| > 1.22 at least, a screen rather than a test); with
    ``test="welch"`` it counts when Welch's two-sided p < 0.05 instead (each row's ``runs``, the
    seeds' values; :func:`gsoplib.viz.seed_claims.compare_seeds`). Names the pooling that leads
    at the most backbones, with its leads smallest backbone first, or says none does; then the
    one that trails at the most, if any. ``adjusted`` (optional): a corrected p per
    (backbone, pooling), e.g. Benjamini-Hochberg's over a family of ``family``; the title then
    adds how many of the leading pooling's counted leads keep an adjusted p < 0.05."""
    if test not in ("std", "welch"):
        raise ValueError(f"test must be 'std' or 'welch', got {test!r}")
    cells = {(r["backbone"], r["pooling"]): r for r in rows if r["dataset"] == dataset}
    poolings = [p for p in (poolings or dict.fromkeys(p for _, p in cells)) if p != "GAP"]
    shown = [b for b in backbones if (b, "GAP") in cells]
    if not shown or not poolings:
        raise ValueError(f"sweep_finding needs GAP and another pooling of {dataset!r}")

    def leads(p: str, sign: int, at: Sequence[str] | None = None) -> list[float]:
        out = []
        for b in (shown if at is None else at):
            if (b, p) in cells:
                lead = cells[(b, p)]["test_top1"] - cells[(b, "GAP")]["test_top1"]
                noise = max(cells[(b, p)]["test_top1_std"], cells[(b, "GAP")]["test_top1_std"])
                if test == "welch":   # the lead as the test sees it: the seeds' means
                    welch = compare_seeds(cells[(b, p)]["runs"], cells[(b, "GAP")]["runs"])
                    # a significant lead only has to have the sign; any other never counts
                    lead, noise = welch.gap, (abs(welch.gap) if welch.p >= 0.05 else 0.0)
                if sign * lead > noise:
                    out.append(lead)
        return out

    def best(sign: int) -> tuple[str, list[float]]:
        return max(((p, leads(p, sign)) for p in poolings),
                   key=lambda pl: (len(pl[1]), sign * sum(pl[1])))

    ahead, behind = best(+1), best(-1)
    rule = "beyond seed noise" if test == "std" else "at p < 0.05 (Welch)"
    if ahead[1]:
        text = (f"{dataset}: {ahead[0]} leads GAP\n{rule} at {len(ahead[1])} of "
                f"{len(shown)} sizes ({', '.join(f'{v:+.1f}' for v in ahead[1])} points)")
        if adjusted is not None:
            kept = sum(1 for b in shown if adjusted.get((b, ahead[0]), 1.0) < 0.05
                       and leads(ahead[0], +1, [b]))
            text += f",\n{kept} of {len(shown)} after BH" + (f" over {family}" if family else "")
    else:
        text = f"{dataset}: no pooling leads GAP {rule} at any size"
    if behind[1]:
        text += (f";\n{behind[0]} trails it at {len(behind[1])} of {len(shown)} "
                 f"({', '.join(f'{v:+.1f}' for v in behind[1])})")
    return text


def probe_finding(rows: Sequence[dict], dataset: str, per_class: int) -> str:
    """What one panel of :func:`probe_figure` shows, as a title: per frozen backbone, in the
    panel's order (left to right), the better of the second-order poolings (covariance, root)
    minus GAP, in points of the mean test top-1 over the label draws."""
    chosen = [r for r in rows if r["dataset"] == dataset and r["per_class"] == per_class]
    if not chosen:
        raise ValueError(f"no probe rows for {dataset!r} at {per_class} labels a class")
    cell = {(r["backbone"], r["pooling"]): r["test_top1"] for r in chosen}
    leads = []
    for b in dict.fromkeys(r["backbone"] for r in chosen):
        others = [v for (bb, p), v in cell.items() if bb == b and p != "gap"]
        if (b, "gap") in cell and others:
            leads.append(f"{max(others) - cell[(b, 'gap')]:+.1f}")
    return (f"{dataset}, {per_class} labels a class: the better of covariance and root minus "
            f"GAP,\nbackbone by backbone (left to right): {', '.join(leads)} points")


__all__ = ["PROBE_COLOURS", "STYLES", "probe_figure", "probe_finding", "sweep_figure",
           "sweep_finding", "sweep_view"]
