"""What every chart shares: the Agg backend, the returned record, titles, input loading, saving.

Charts are drawn on `matplotlib.figure.Figure` objects, not through pyplot, so nothing piles up
in pyplot's global figure list when a search or a demo draws many charts in one process.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import NamedTuple

import matplotlib

# Charts are written to files, often on machines without a display; Agg must be chosen before
# pyplot is first imported. A caller that already imported pyplot (a notebook) keeps its backend.
if "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from latbench.errors import LatbenchError  # noqa: E402
from latbench.files import atomic_path, check_output  # noqa: E402
from latbench.table import Table, load_table  # noqa: E402

PNG_DPI = 150
#: One colour per role, the same in every chart.
COLORS = {"main": "#1f77b4", "accent": "#d62728", "base": "#08306b", "level": "#6baed6",
          "muted": "#7f7f7f", "group": "#2ca02c"}
TITLE_SIZE = 11


class Chart(NamedTuple):
    """A drawn chart: the figure and the files written (PNG first, then SVG)."""

    figure: Figure
    paths: list[Path]


class FactorChart(NamedTuple):
    """The factor chart, plus the table keys it needed but could not find (left out)."""

    figure: Figure
    paths: list[Path]
    missing: list[str]


def plain_text(chart):
    """Decorator of a chart function: every text it draws is shown as written. Names, models and
    provenance come from users' files, and matplotlib would parse "$...$" in them as mathtext
    (a parse error, or silently changed text); latbench's own labels use no mathtext."""

    @functools.wraps(chart)
    def draw(*args, **kwargs):
        with matplotlib.rc_context({"text.parse_math": False}):
            return chart(*args, **kwargs)

    return draw


#: Most title lines (what, then provenance): a longer title would squeeze the axes to nothing.
MAX_TITLE_LINES = 6


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure with constrained layout, which keeps titles, labels and legends from overlapping."""
    return Figure(figsize=(width_in, height_in), layout="constrained")


def title(fig: Figure, what: str, provenance: str) -> None:
    """Title: what the chart shows, then where the numbers were measured; lines are wrapped to
    the figure's width so a narrow chart never cuts them off."""
    import textwrap

    width = max(40, int(fig.get_figwidth() * 10.5))  # characters at TITLE_SIZE
    lines = [w for line in f"{what}\n{provenance}".splitlines() for w in textwrap.wrap(line, width)]
    if len(lines) > MAX_TITLE_LINES:
        lines = lines[:MAX_TITLE_LINES - 1] + [f"... ({len(lines) - MAX_TITLE_LINES + 1} more lines)"]
    fig.suptitle("\n".join(lines), fontsize=TITLE_SIZE)


def as_table(table: Table | str | Path) -> Table:
    return table if isinstance(table, Table) else load_table(table)


def output_stem(out: str | Path) -> Path:
    """The path without its suffix; `out` may end in .png, .svg or nothing."""
    out = Path(out)
    if out.suffix.lower() in (".png", ".svg"):
        return out.with_suffix("")
    if out.suffix:
        raise LatbenchError(f"{out}: charts are written as PNG and SVG; end the name in .png or drop the suffix")
    return out


def chart_paths(out: str | Path) -> list[Path]:
    """The two files a chart named `out` is written to: OUT.png, then OUT.svg (same stem)."""
    stem = output_stem(out)
    return [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]


def save(fig: Figure, out: str | Path) -> list[Path]:
    """Write `fig` as OUT.png and OUT.svg (same stem), each atomically (latbench.files): a full
    disk or a kill leaves the old chart or the new one, never half of one; returns both paths."""
    if output_stem(out) == Path(out) and Path(out).is_dir():  # "--out plots" meant as a folder
        raise LatbenchError(f"{out}: is a folder; give a file name such as {Path(out) / 'chart.png'}")
    paths = chart_paths(out)
    for p in paths:
        check_output(p, "chart file")
    with atomic_path(paths[0]) as tmp:
        fig.savefig(tmp, format="png", dpi=PNG_DPI)
    with atomic_path(paths[1]) as tmp:
        # No date in the SVG, so that the same data gives the same file.
        fig.savefig(tmp, format="svg", metadata={"Date": None})
    return paths


def grid_lines(ax, axis: str = "y") -> None:
    """Light gridlines behind the data."""
    ax.grid(True, axis=axis, color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
