"""Two tables side by side: per-block latency ratio B / A over the keys both measured, by block kind
(another GPU, backend, precision or software version: which kinds of block gain or lose)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator
from matplotlib.transforms import blended_transform_factory

from latbench.errors import LatbenchError
from latbench.plots.common import COLORS, Chart, as_table, grid_lines, new_figure, plain_text, save, title
from latbench.spec import KINDS, parse_key
from latbench.table import Table, identity_diff

JITTER = 0.16  # half-width of the strip, in category units
RATIO_TICKS = (1.0, 2.0, 5.0)  # log-axis ticks at 1, 2, 5 x 10^k read better than powers of ten alone


def ratios_by_kind(a: Table, b: Table) -> dict[str, dict[str, float]]:
    """{kind: {key: median_us of B / median_us of A}} over the ok keys of both, kinds in KINDS order."""
    ok_a, ok_b = a.ok(), b.ok()
    shared = sorted(set(ok_a) & set(ok_b))
    if not shared:
        raise LatbenchError(f"{a.path} and {b.path} share no measured block key; build both from the same "
                            "key set (e.g. --grid factor_grid) to compare them")
    out: dict[str, dict[str, float]] = {k: {} for k in KINDS}
    for key in shared:
        out[parse_key(key).kind][key] = ok_b[key] / ok_a[key]
    return {k: v for k, v in out.items() if v}


@plain_text
def compare(table_a: Table | str | Path, table_b: Table | str | Path, out: str | Path) -> Chart:
    """Per-block latency ratio B / A (log scale) per block kind: a box per kind with every block as
    a point, the kind's geometric-mean ratio annotated above it. Writes OUT (.png) and its SVG."""
    a, b = as_table(table_a), as_table(table_b)
    groups = ratios_by_kind(a, b)
    fig = new_figure(max(8.5, 1.7 * len(groups) + 3), 6.5)
    ax = fig.subplots()
    positions = np.arange(len(groups))
    values = [np.array(list(v.values())) for v in groups.values()]
    ax.boxplot(values, positions=positions, widths=0.55, showfliers=False, patch_artist=True,
               boxprops={"facecolor": "#deebf7", "edgecolor": COLORS["muted"]},
               medianprops={"color": COLORS["base"]}, whiskerprops={"color": COLORS["muted"]},
               capprops={"color": COLORS["muted"]})
    rng = np.random.default_rng(0)  # fixed jitter: the same tables give the same chart
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for x, kind, r in zip(positions, groups, values):
        ax.scatter(x + rng.uniform(-JITTER, JITTER, len(r)), r, s=18, color=COLORS["main"], alpha=0.7,
                   zorder=3, label=kind)
        gmean = float(np.exp(np.log(r).mean()))
        ax.hlines(gmean, x - 0.3, x + 0.3, color=COLORS["accent"], linewidth=2, zorder=4)
        ax.text(x, 1.01, f"geo-mean ×{gmean:.2f}", transform=top, ha="center", va="bottom", fontsize=9,
                color=COLORS["accent"])
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    _log_ratio_axis(ax, values)
    ax.set_xticks(positions, [f"{k}\n(n = {len(v)})" for k, v in groups.items()])
    ax.set_xlabel("block kind")
    ax.set_ylabel("latency ratio B / A (per block, us / us)")
    grid_lines(ax)
    n = sum(len(v) for v in values)
    overall = float(np.exp(np.mean(np.log(np.concatenate(values)))))
    title(fig, f"Per-block latency B / A over {n} shared keys (geo-mean ×{overall:.2f}; red bar: geo-mean "
               "per kind; above 1: B slower)", _provenance(a, b))
    return Chart(fig, save(fig, out))


def _provenance(a: Table, b: Table) -> str:
    """Both tables' provenance; when that reads the same, the settings it omits that differ."""
    text = f"A: {a.describe()}\nB: {b.describe()}"
    if a.describe() != b.describe():
        return text
    diff = identity_diff(a.meta, b.meta)
    return text + "\nA vs B: " + ("; ".join(diff) if diff else "same device and settings (a repeat run)")


def _log_ratio_axis(ax, values: list[np.ndarray]) -> None:
    """Log y axis holding every ratio and the line at 1, labelled in plain numbers (0.5, 1, 2)."""
    every = np.concatenate(values)
    lo, hi = min(every.min(), 1.0) / 1.15, max(every.max(), 1.0) * 1.15
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    if hi / lo > 10:
        ax.yaxis.set_major_locator(LogLocator(subs=RATIO_TICKS))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:  # within a decade, powers of ten would leave one label at most: round, evenly spaced ticks
        ax.yaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 5, 10]))
        ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
