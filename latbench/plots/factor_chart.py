"""The factor chart (GPUNet paper, Figure 3): what each factor of the search space costs.

One panel per factor of a grid file's "vary" section (activation, expansion, kernel, SE, input
size, filters), each showing one block's latency at every level of the factor with the other
fields held at the base block; a "layers per stage" panel (a stage of L identical base blocks
costs L x base); and a summary panel with each factor's max/min latency ratio.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from matplotlib.transforms import blended_transform_factory

from latbench.errors import LatbenchError, SpecError
from latbench.keysets import factor_levels, grid_specs
from latbench.plots.common import COLORS, FactorChart, as_table, grid_lines, new_figure, plain_text, save, title
from latbench.spec import BlockSpec, format_number, parse_key
from latbench.table import Table

#: Panel order and axis labels of the grid factors the GPUNet space searches.
FACTOR_LABELS = {
    "act": ("activation", "activation"),
    "expansion": ("expansion", "expansion ratio (hidden / in channels)"),
    "kernel": ("kernel", "kernel size k (k x k)"),
    "se": ("squeeze-excitation", "SE module"),
    "resolution": ("input resolution", "block input size H = W (px)"),
    "filters": ("filters", "filters (in = out channels)"),
}
LAYERS = tuple(range(1, 9))
Y_LABEL = "latency (us per batch)"


@dataclass
class Panel:
    """One factor's plotted levels; times in microseconds per batch (median, p10, p90)."""

    title: str
    xlabel: str
    levels: list[str]
    median_us: np.ndarray
    p10_us: np.ndarray
    p90_us: np.ndarray
    base_index: int | None  # which level is the base block (darker bar)
    note: str  # what was left out, for the axis label ("" when nothing)


def factor_specs(grid: str | Path, base_key: str | None = None) -> tuple[BlockSpec, dict, list[str]]:
    """(base block, {factor: [(level label, BlockSpec)]}, factors left out) of a grid file,
    optionally re-based.

    With `base_key`, each factor's levels set the same fields on that block instead; a factor
    whose levels are invalid for it (SE on a conv block) is left out.
    """
    grid_specs(grid)  # reports a missing or malformed grid file with a clear message
    try:
        grid_base, levels = factor_levels(grid)
    except KeyError:
        raise LatbenchError(f"{grid}: a factor grid needs a \"base\" block and \"vary\" factors") from None
    if not levels:
        raise LatbenchError(f"{grid}: no \"vary\" factors to chart")
    base = parse_key(base_key) if base_key else grid_base  # a bad key is a SpecError, told as one line
    out, left_out = {}, []
    for factor, specs in levels.items():
        # The fields a factor sets are those in which its levels differ from the grid's base.
        varied = [f.name for f in fields(BlockSpec)
                  if any(getattr(s, f.name) != getattr(grid_base, f.name) for s in specs)]
        try:
            out[factor] = [(_label(s, varied), replace(base, **{f: getattr(s, f) for f in varied}))
                           for s in specs]
        except SpecError:
            left_out.append(factor)
    return base, out, left_out


def _label(spec: BlockSpec, varied: list[str]) -> str:
    if not varied:
        return "base"
    value = getattr(spec, varied[0])
    if isinstance(value, bool):
        return "with SE" if value else "no SE"
    return format_number(value) if isinstance(value, float) else str(value)


def factor_keys(grid: str | Path = "factor_grid", base_key: str | None = None) -> list[BlockSpec]:
    """Every block the factor chart of `grid` (re-based on `base_key`) draws: what to measure
    before drawing it."""
    base, levels, _ = factor_specs(grid, base_key)
    return _needed(base, levels)


def _needed(base: BlockSpec, levels: dict) -> list[BlockSpec]:
    needed = [base] + [s for pairs in levels.values() for _, s in pairs]
    return list({s.key: s for s in needed}.values())


@plain_text
def factors(table: Table | str | Path, out_dir: str | Path, grid: str | Path = "factor_grid",
            base_key: str | None = None) -> FactorChart:
    """Draw the factor chart of `table` into OUT_DIR/factors[-BASE].png and .svg.

    Levels whose key the table lacks (or failed) are listed on stderr, returned in `missing` and
    left out (`latbench plot factors --missing measure` measures them first, on the table's
    device).
    """
    if Path(out_dir).is_file():
        raise LatbenchError(f"{out_dir}: is a file; --out names the folder that gets factors.png and .svg")
    table = as_table(table)
    base, levels, left_out = factor_specs(grid, base_key)
    needed = _needed(base, levels)
    ok = table.ok()
    missing = [s.key for s in needed if s.key not in ok]
    if len(missing) == len(needed):
        raise LatbenchError(f"{table.path}: has none of the {len(missing)} blocks of the factor chart (base "
                            f"{base.key}); measure them with latbench build-table --grid {grid}, or pass "
                            "--missing measure on the table's device")
    if left_out:
        print(f"factor(s) {', '.join(left_out)} left out: they do not apply to {base.key}", file=sys.stderr)
    if missing:
        print(f"{len(missing)} block(s) of the chart are not in the table {table.path} and are left out "
              "(on the table's device, --missing measure measures them):", file=sys.stderr)
        for key in missing:
            print(f"  {key}", file=sys.stderr)
    panels = [_panel(table, f, levels[f], base) for f in _ordered(levels)] + [_layers_panel(table, base)]
    fig = _draw(panels)
    title(fig, f"Latency cost of each factor of the GPUNet space: one factor varied, the rest at the base "
               f"block {base.key} (dark bar); error bars p10-p90", table.describe())
    name = "factors" if base_key is None else f"factors-{base.key}"
    return FactorChart(fig, save(fig, Path(out_dir) / f"{name}.png"), missing)


def _ordered(levels: dict) -> list[str]:
    known = [f for f in FACTOR_LABELS if f in levels]
    return known + [f for f in levels if f not in FACTOR_LABELS]


def _panel(table: Table, factor: str, pairs: list, base: BlockSpec) -> Panel:
    rows = table.rows
    ok = table.ok()
    kept = [(label, s) for label, s in pairs if s.key in ok]
    heading, xlabel = FACTOR_LABELS.get(factor, (factor, factor))
    base_at = [i for i, (_, s) in enumerate(kept) if s == base]
    return Panel(heading, xlabel, [label for label, _ in kept],
                 np.array([rows[s.key]["median_us"] for _, s in kept], dtype=float),
                 np.array([rows[s.key]["p10_us"] for _, s in kept], dtype=float),
                 np.array([rows[s.key]["p90_us"] for _, s in kept], dtype=float),
                 base_at[0] if base_at else None,
                 f"({len(pairs) - len(kept)} level(s) not in the table)" if len(kept) < len(pairs) else "")


def _layers_panel(table: Table, base: BlockSpec) -> Panel:
    """A stage of L identical base blocks costs L x base (the paper's layer-count factor)."""
    heading, xlabel = "layers per stage", "layers L in the stage (L x base block)"
    if base.key not in table.ok():
        empty = np.zeros(0)
        return Panel(heading, xlabel, [], empty, empty, empty, None, "(the base block is not in the table)")
    row, L = table.rows[base.key], np.array(LAYERS, dtype=float)
    return Panel(heading, xlabel, [str(n) for n in LAYERS], L * row["median_us"],
                 L * row["p10_us"], L * row["p90_us"], 0, "")


def _draw(panels: list[Panel]):
    n = len(panels) + 1  # + the summary panel
    cols = 4
    rows = -(-n // cols)
    fig = new_figure(4.3 * cols, 3.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, p in zip(axes, panels):
        _draw_panel(ax, p)
    _draw_summary(axes[len(panels)], panels)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


def _draw_panel(ax, p: Panel) -> None:
    x = np.arange(len(p.levels))
    colors = [COLORS["base"] if i == p.base_index else COLORS["level"] for i in x]
    ax.bar(x, p.median_us, yerr=[p.median_us - p.p10_us, p.p90_us - p.median_us], color=colors,
           width=0.7, capsize=3, error_kw={"elinewidth": 1, "ecolor": "#333333"})
    for xi, med, top in zip(x, p.median_us, p.p90_us):
        ax.annotate(f"{med:,.0f}" if med >= 10 else f"{med:.3g}", (xi, top), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, p.levels, rotation=30 if max(map(len, p.levels), default=0) > 4 else 0)
    ax.set_title(p.title, fontsize=10, fontweight="bold")
    ax.set_xlabel(f"{p.xlabel}\n{p.note}" if p.note else p.xlabel, fontsize=9)
    ax.set_ylabel(Y_LABEL, fontsize=9)
    if len(p.levels):
        ax.set_ylim(0, p.p90_us.max() * 1.15)  # room for the value labels
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "nothing to show", transform=ax.transAxes, ha="center", color=COLORS["muted"])
    grid_lines(ax)


def _draw_summary(ax, panels: list[Panel]) -> None:
    """Max/min latency ratio across each factor's levels, one horizontal bar per factor."""
    shown = [p for p in panels if len(p.levels) >= 2]
    ratios = [p.median_us.max() / p.median_us.min() for p in shown]
    y = np.arange(len(shown))[::-1]  # first factor on top, as the panels read
    # Bars start at ratio 1 (no cost) and end at the ratio.
    ax.barh(y, np.array(ratios) - 1.0, left=1.0, color=COLORS["main"], height=0.38)
    # Names sit above their bars rather than as tick labels: long tick labels would widen this
    # column of the grid and make the factor panels above it wider than the others.
    left = blended_transform_factory(ax.transAxes, ax.transData)
    for yi, p, r in zip(y, shown, ratios):
        hi, lo = p.levels[int(p.median_us.argmax())], p.levels[int(p.median_us.argmin())]
        ax.text(0.01, yi + 0.22, f"{p.title}: ×{r:.2f}  ({hi} vs {lo})", transform=left, va="bottom",
                fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.5, len(shown) - 0.1)
    ax.axvline(1.0, color=COLORS["muted"], linewidth=1, linestyle="--")
    # Ratios run from ~1 (kernel) to >100 (resolution): a log axis keeps the small ones visible.
    ax.set_xscale("log")
    ax.set_xlim(1.0, max(max(ratios, default=1.0) * 1.3, 2.0))
    ax.set_title("relative cost of each factor", fontsize=10, fontweight="bold")
    ax.set_xlabel("slowest / fastest level (latency ratio)", fontsize=9)
    grid_lines(ax, "x")
