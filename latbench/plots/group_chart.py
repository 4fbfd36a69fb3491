"""Stage one of the search at a glance: the predicted latencies of a Sobol pool and its groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.patches import Patch

from latbench.errors import LatbenchError
from latbench.plots.common import COLORS, Chart, grid_lines, new_figure, plain_text, save, title
from latbench.predictor import group_counts

#: Group shades, light enough that the histogram bars stay readable on top of them.
SHADES = ("#fdd0a2", "#c7e9c0", "#c6dbef", "#dadaeb", "#fcbba1", "#d9d9d9")


@plain_text
def groups(latency_ms, out: str | Path, edges: list[float], meta: dict | None = None) -> Chart:
    """Histogram of a pool's predicted latency (ms per batch) with its latency groups.

    `latency_ms` [N]: predicted latencies; `edges`: group boundaries in ms; `meta`: the pool's
    metadata (space, table_provenance, calibrated) for the title and axis. Each group [lo, hi)
    is shaded, its boundaries drawn as dashed lines, and its network count given in the legend.
    Writes OUT (.png) and the SVG beside it.
    """
    meta = meta or {}
    edges = sorted(edges)
    lat = np.asarray(latency_ms, dtype=float)
    if len(lat) == 0 or not np.isfinite(lat).all():
        raise LatbenchError("the pool's predicted latencies are empty or not finite: draw the pool again")
    if any(not np.isfinite(e) or e <= 0 for e in edges):
        raise LatbenchError(f"latency-group boundaries must be positive, finite ms, got {edges}")
    counts = group_counts(lat, edges)
    fig = new_figure(11, 5.2)
    ax = fig.subplots()
    right = max([float(lat.max()), *edges]) * 1.04  # every group boundary stays in view
    handles = []
    for i, (lo, hi, count) in enumerate(counts):
        shade = SHADES[i % len(SHADES)]
        ax.axvspan(lo, min(hi, right), color=shade, alpha=0.6, linewidth=0)
        handles.append(Patch(color=shade, label=f"{_group_name(lo, hi)}: {count} networks "
                                                f"({count / len(lat) * 100:.1f} %)"))
    ax.hist(lat, bins=_bins(lat, edges), color=COLORS["main"], edgecolor="white", linewidth=0.5)
    for e in edges:
        ax.axvline(e, color="black", linestyle="--", linewidth=1.2)
    ax.set_xlim(min(0.0, float(lat.min())), right)
    kind = "calibrated" if meta.get("calibrated") else "raw sum of table rows"
    ax.set_xlabel(f"predicted latency (ms per batch, {kind})")
    ax.set_ylabel("networks")
    # Outside the axes: the legend never hides a bar.
    fig.legend(handles=handles, title="latency groups", loc="outside lower center", ncols=3, fontsize=9,
               title_fontsize=9, frameon=False)
    grid_lines(ax)
    space = meta.get("space", "?")
    title(fig, f"Predicted latency of {len(lat):,} Sobol-sampled networks of the {space} space",
          meta.get("table_provenance", "table provenance unknown"))
    return Chart(fig, save(fig, out))


def _group_name(lo: float, hi: float) -> str:
    if lo == 0:
        return f"< {hi:g} ms"
    return f">= {lo:g} ms" if hi == float("inf") else f"[{lo:g}, {hi:g}) ms"


def _bins(lat: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin edges of about numpy's "auto" width (at most 80 bins) with every group boundary on a bin
    edge, so that no bar straddles two groups."""
    auto = np.histogram_bin_edges(lat, bins="auto")
    lo, hi = float(lat.min()), float(lat.max())
    if hi == lo:
        return auto
    width = (hi - lo) / min(len(auto) - 1, 80)
    cuts = [lo, *(e for e in edges if lo < e < hi), hi]
    parts = [np.linspace(a, b, max(1, int(np.ceil((b - a) / width - 1e-9))) + 1) for a, b in zip(cuts, cuts[1:])]
    return np.unique(np.concatenate(parts))
