"""Stage two at a glance: accuracy against predicted latency of a search's trials, its Pareto front,
the searched latency group, and where the reference GPUNets fall on the same table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latbench.errors import LatbenchError
from latbench.plots.common import COLORS, Chart, as_table, grid_lines, new_figure, save, title
from latbench.table import Table, identity_diff, load_table
from nas.results import ResultsLog

REFERENCES = ("gpunet-0", "gpunet-1", "gpunet-2")
REFERENCE_COLORS = ("#9467bd", "#8c564b", "#bcbd22")


def pareto_mask(latency_ms, top1) -> np.ndarray:
    """True for the non-dominated trials: no other trial is at least as fast and as accurate and
    strictly better in one of the two. Shapes [N] -> [N] bool."""
    lat, acc = np.asarray(latency_ms, dtype=float), np.asarray(top1, dtype=float)
    no_worse = (lat[None, :] <= lat[:, None]) & (acc[None, :] >= acc[:, None])  # [i, j]: j vs i
    better = (lat[None, :] < lat[:, None]) | (acc[None, :] > acc[:, None])
    return ~(no_worse & better).any(axis=1)


def reference_latencies(table: Table) -> dict[str, tuple[float, float]]:
    """{name: (predicted ms per batch, share of it from measured rows)} of GPUNet-0/1/2."""
    from latbench.arch_io import load_arch
    from latbench.predictor import Predictor

    pred = Predictor(table)
    out = {}
    for name in REFERENCES:
        p = pred.predict(load_arch(name), missing="estimate")
        out[name] = (p.latency_ms, p.measured_fraction)
    return out


def pareto(results_dir: str | Path, out: str | Path, table: Table | str | Path | None = None) -> Chart:
    """Top-1 (%) against predicted latency (ms per batch) of the done trials in RESULTS_DIR.

    The Pareto front (higher accuracy, lower latency) is drawn as a step line and the searched
    latency group shaded; with `table`, GPUNet-0/1/2 predicted on it are vertical lines. The
    title names the search's table (or `table` when the search's table file is gone).
    """
    log = ResultsLog(results_dir)
    if not log.path.is_file():
        raise LatbenchError(f"{results_dir}: no results.jsonl (run latbench search --out {results_dir})")
    history = log.read()
    config = history.config or {}
    done = history.done
    if not done:
        raise LatbenchError(f"{log.path}: no finished trial yet; plot again when some are done")
    lat = np.array([r["predicted_ms"] for r in done], dtype=float)
    acc = np.array([r["top1"] for r in done], dtype=float)
    ref_table = as_table(table) if table is not None else None
    provenance = _provenance(config, ref_table, log.path)

    fig = new_figure(9, 5.6)
    ax = fig.subplots()
    lo, hi = config.get("latency_min"), config.get("latency_max")
    if lo is not None and hi is not None:
        ax.axvspan(lo, hi, color=COLORS["group"], alpha=0.12, linewidth=0,
                   label=f"searched latency group [{lo:g}, {hi:g}) ms")
    _draw_trials(ax, lat, acc)
    refs = reference_latencies(ref_table) if ref_table is not None else {}
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
    method = config.get("method", "search")
    title(fig, f"Search ({method}): accuracy vs predicted latency of {len(done)} trained networks", provenance)
    return Chart(fig, save(fig, out))


def _draw_trials(ax, lat: np.ndarray, acc: np.ndarray) -> None:
    """Every trial as a point; the Pareto front as a step line (the best accuracy reachable within
    a latency budget holds until the next front point)."""
    ax.scatter(lat, acc, s=22, color=COLORS["main"], alpha=0.6, label=f"trials ({len(lat)})", zorder=3)
    front = np.flatnonzero(pareto_mask(lat, acc))
    front = front[np.lexsort((-acc[front], lat[front]))]  # by latency; the step rises left to right
    ax.step(lat[front], acc[front], where="post", color=COLORS["accent"], linewidth=1.8, marker="o",
            markersize=6, label=f"Pareto front ({len(front)} trials)", zorder=4)


def _provenance(config: dict, ref_table: Table | None, results: Path) -> str:
    """The provenance of the table the trials were predicted with; notes a different `table`."""
    path = config.get("table")
    searched = load_table(path) if path and Path(path).is_file() else None
    if searched is None and ref_table is None:
        raise LatbenchError(f"{results}: the search's table {path!r} is not here; pass --table so that "
                            "the chart can name the device, backend, precision and batch")
    if searched is None:
        return ref_table.describe()
    if ref_table is not None and identity_diff(searched.meta, ref_table.meta):
        return f"{searched.describe()}\nGPUNet lines: {ref_table.describe()}"
    return searched.describe()


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
