"""How well a table predicts whole networks: predicted against measured latency, from the report
that `latbench validate` writes (latbench.validate.validate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latbench.errors import LatbenchError
from latbench.plots.common import COLORS, Chart, grid_lines, new_figure, read_json, save, title

#: (report metric block, row field, marker, colour) of the plotted predictions; a report has the
#: raw sum always, the stored calibration when the table had one, the refit when enough networks.
SERIES = (
    ("raw_sum", "raw_sum_us", "o", COLORS["main"]),
    ("stored_calibration", "stored_calibrated_us", "D", "#6a51a3"),
    ("calibrated_held_out", "calibrated_held_out_us", "s", COLORS["accent"]),
)
ROW_FIELDS = ("measured_us", "raw_sum_us")


def validate(report: dict | str | Path, out: str | Path) -> Chart:
    """Scatter of predicted vs measured whole-network latency (ms per batch), one series for the
    raw sum, one for the table's stored calibration (when it had one) and one for the held-out
    refitted calibration (when there were enough networks), over the y = x line with +-3 % and
    +-10 % bands; the legend gives each series' share within +-3 % and +-10 % and Kendall tau.
    Axes are logarithmic when the networks span more than a factor of ten."""
    source = "report" if isinstance(report, dict) else str(report)
    rep = report if isinstance(report, dict) else read_json(report, "validation report")
    _check(rep, source)
    rows = rep["rows"]
    series = [s for s in SERIES if rep.get(s[0]) and all(isinstance(r.get(s[1]), (int, float)) for r in rows)]
    measured = np.array([r["measured_us"] for r in rows], dtype=float) / 1000.0
    predicted = {field: np.array([r[field] for r in rows], dtype=float) / 1000.0 for _, field, _, _ in series}
    every = np.concatenate([measured, *predicted.values()])
    lo, hi = every.min() / 1.08, every.max() * 1.08
    log = hi / lo > 10

    fig = new_figure(7.8, 8.4)
    ax = fig.subplots()
    _reference_bands(ax, lo, hi, log)
    model = (rep.get("calibration") or {}).get("model")
    stored = (rep.get("stored_calibration") or {}).get("model")
    names = {"raw_sum": "raw sum", "stored_calibration": f"stored calibration ({stored})",
             "calibrated_held_out": f"calibrated{f' ({model})' if model else ''}, held out"}
    for block, field, marker, color in series:
        ax.scatter(measured, predicted[field], marker=marker, s=30, color=color, alpha=0.75, edgecolor="white",
                   linewidth=0.5, label=f"{names[block]}: {_headline(rep[block])}", zorder=3)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("measured latency (ms per batch)")
    ax.set_ylabel("predicted latency (ms per batch)")
    handles, labels = ax.get_legend_handles_labels()
    # The two series and their headline figures first, then the reference line and bands; below the
    # axes, so that the legend never hides a point.
    fig.legend(handles[3:] + handles[:3], labels[3:] + labels[:3], loc="outside lower center", fontsize=9,
               frameon=False)  # the first three handles are the bands and the y = x line
    grid_lines(ax, "both")
    title(fig, f"Whole-network latency, predicted vs measured ({len(rows)} networks)", rep["table_provenance"])
    return Chart(fig, save(fig, out))


def _reference_bands(ax, lo: float, hi: float, log: bool) -> None:
    """The y = x line and the +-3 % and +-10 % bands around it, from lo to hi (ms)."""
    xs = np.geomspace(lo, hi, 200) if log else np.linspace(lo, hi, 200)
    ax.fill_between(xs, xs * 0.90, xs * 1.10, color="#bdbdbd", alpha=0.35, linewidth=0, label="±10 % band")
    ax.fill_between(xs, xs * 0.97, xs * 1.03, color="#969696", alpha=0.45, linewidth=0, label="±3 % band")
    ax.plot(xs, xs, color="black", linestyle="--", linewidth=1, label="y = x")


def _headline(metrics: dict) -> str:
    """The figures a reader wants first: shares within +-3 % and +-10 % (percent), Kendall tau."""
    return (f"{metrics['within_3_pct']:.0f} % within ±3 %, {metrics['within_10_pct']:.0f} % within ±10 %, "
            f"Kendall τ {metrics['kendall_tau']:.2f}")


def _check(rep: dict, source: str) -> None:
    """LatbenchError unless `rep` has what the chart reads."""
    hint = "write one with latbench validate --report FILE"
    for key in ("rows", "raw_sum", "table_provenance"):
        if key not in rep:
            raise LatbenchError(f"{source}: not a latbench validation report (no {key!r}; {hint})")
    rows = rep["rows"]
    if not isinstance(rows, list) or not rows:
        raise LatbenchError(f"{source}: the report has no networks to plot")
    for i, row in enumerate(rows):
        lacking = [f for f in ROW_FIELDS if not isinstance(row.get(f), (int, float)) or row[f] <= 0]
        if lacking:
            raise LatbenchError(f"{source}: rows[{i}] lacks a positive {lacking[0]} ({hint})")
