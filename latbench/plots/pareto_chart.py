"""Stage two at a glance: accuracy against predicted latency of a search's trials, its Pareto front,
the searched latency group, and where the reference GPUNets fall on the same table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latbench.errors import LatbenchError
from latbench.plots.common import COLORS, Chart, grid_lines, new_figure, plain_text, save, title

REFERENCE_COLORS = ("#9467bd", "#8c564b", "#bcbd22")


def pareto_mask(latency_ms, top1) -> np.ndarray:
    """True for the non-dominated trials: no other trial is at least as fast and as accurate and
    strictly better in one of the two. Shapes [N] -> [N] bool."""
    lat, acc = np.asarray(latency_ms, dtype=float), np.asarray(top1, dtype=float)
    no_worse = (lat[None, :] <= lat[:, None]) & (acc[None, :] >= acc[:, None])  # [i, j]: j vs i
    better = (lat[None, :] < lat[:, None]) | (acc[None, :] > acc[:, None])
    return ~(no_worse & better).any(axis=1)


@plain_text
def pareto(trials: list[dict], out: str | Path, provenance: str, *, group_ms=None, method: str = "search",
           references: dict[str, tuple[float, float]] | None = None) -> Chart:
    """Top-1 (%) against predicted latency (ms per batch) of finished trials.

    `trials`: records with "predicted_ms" and "top1" (a search's results.jsonl "done" records);
    `provenance`: the table the latencies came from (device, backend, precision, batch);
    `group_ms`: the searched latency group (lo, hi), shaded; `references`: {name: (predicted ms,
    share from measured rows)} drawn as vertical lines (GPUNet-0/1/2). The Pareto front (higher
    accuracy, lower latency) is drawn as a step line.
    """
    if not trials:
        raise LatbenchError("no finished trial yet; plot again when some are done")
    lat = np.array([r["predicted_ms"] for r in trials], dtype=float)
    acc = np.array([r["top1"] for r in trials], dtype=float)
    if not (np.isfinite(lat).all() and np.isfinite(acc).all() and (lat > 0).all()):
        raise LatbenchError("a trial's predicted latency or accuracy is not a positive finite number")
    refs = references or {}
    fig = new_figure(9, 5.6)
    ax = fig.subplots()
    if group_ms is not None:
        lo, hi = group_ms
        ax.axvspan(lo, hi, color=COLORS["group"], alpha=0.12, linewidth=0,
                   label=f"searched latency group [{lo:g}, {hi:g}) ms")
    _draw_trials(ax, lat, acc)
    every = np.concatenate([lat, [ms for ms, _ in refs.values()]])
    log_x = every.max() / max(every.min(), 1e-9) > 10  # trials and references far apart
    if log_x:
        ax.set_xscale("log")  # before the references: their top-axis labels follow the scale
    if refs:
        _draw_references(ax, refs)
    ax.set_xlabel("predicted latency (ms per batch)")
    ax.set_ylabel("top-1 accuracy (%, proxy training)")
    if not log_x:
        ax.set_xlim(left=0)
    fig.legend(loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    grid_lines(ax, "both")
    title(fig, f"Search ({method}): accuracy vs predicted latency of {len(trials)} trained networks", provenance)
    return Chart(fig, save(fig, out))


def _draw_trials(ax, lat: np.ndarray, acc: np.ndarray) -> None:
    """Every trial as a point; the Pareto front as a step line (the best accuracy reachable within
    a latency budget holds until the next front point)."""
    ax.scatter(lat, acc, s=22, color=COLORS["main"], alpha=0.6, label=f"trials ({len(lat)})", zorder=3)
    front = np.flatnonzero(pareto_mask(lat, acc))
    front = front[np.lexsort((-acc[front], lat[front]))]  # by latency; the step rises left to right
    ax.step(lat[front], acc[front], where="post", color=COLORS["accent"], linewidth=1.8, marker="o",
            markersize=6, label=f"Pareto front ({len(front)} trials)", zorder=4)


def _draw_references(ax, refs: dict[str, tuple[float, float]]) -> None:
    """One coloured dotted line per reference; names on a top axis, values in the legend, so that
    no label lies over the trials."""
    names = []
    for (name, (ms, measured)), color in zip(refs.items(), REFERENCE_COLORS):
        names.append(name.replace("gpunet", "GPUNet"))
        ax.axvline(ms, color=color, linestyle=":", linewidth=2,
                   label=f"{names[-1]}: {ms:.3g} ms predicted ({measured * 100:.0f} % from measured rows)")
    top = ax.secondary_xaxis("top")
    top.set_xticks([ms for ms, _ in refs.values()], names, rotation=30, ha="left", fontsize=8)
