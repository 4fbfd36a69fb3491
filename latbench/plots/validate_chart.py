"""How well a table predicts whole networks: predicted against measured latency, from the report
that `latbench validate` writes (latbench.validate.validate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latbench import schema
from latbench.errors import LatbenchError
from latbench.files import clean_json
from latbench.limits import MAX_US, MIN_US
from latbench.plots.common import COLORS, Chart, grid_lines, new_figure, plain_text, save, title

#: (report metric block, row field, marker, colour) of the plotted predictions; a report has the
#: raw sum always, the stored calibration when the table had one, the refit when enough networks.
SERIES = (
    ("raw_sum", "raw_sum_us", "o", COLORS["main"]),
    ("stored_calibration", "stored_calibrated_us", "D", "#6a51a3"),
    ("calibrated_held_out", "calibrated_held_out_us", "s", COLORS["accent"]),
)
ROW_FIELDS = ("measured_us", "raw_sum_us")


@plain_text
def validate(report: dict | str | Path, out: str | Path) -> Chart:
    """Scatter of predicted vs measured whole-network latency (ms per batch), one series for the
    raw sum, one for the table's stored calibration (when it had one) and one for the held-out
    refitted calibration (when there were enough networks), over the y = x line with +-3 % and
    +-10 % bands; the legend gives each series' share within +-3 % and +-10 % and Kendall tau.
    Axes are logarithmic when the networks span more than a factor of ten."""
    source = "report" if isinstance(report, dict) else str(report)
    # In memory, an undefined statistic is NaN; in the file it is null: the chart reads both alike.
    rep = clean_json(report) if isinstance(report, dict) else schema.read_object(report, "validation report")
    check_report(rep, source)
    rows = rep["rows"]
    series = [s for s in SERIES if rep.get(s[0]) and all(r.get(s[1]) is not None for r in rows)]
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
    """The figures a reader wants first: shares within +-3 % and +-10 % (percent), Kendall tau
    (undefined, null in the report, for a single network)."""
    tau = metrics.get("kendall_tau")
    return (f"{metrics['within_3_pct']:.0f} % within ±3 %, {metrics['within_10_pct']:.0f} % within ±10 %, "
            f"Kendall τ {'n/a' if tau is None else f'{tau:.2f}'}")


def check_report(rep: dict, source: str) -> None:
    """LatbenchError unless `rep` has what the chart reads, each value in its range."""
    hint = "write one with latbench validate --report FILE"
    where = f"{source}: not a latbench validation report"
    for key in ("rows", "raw_sum", "table_provenance"):
        if key not in rep:
            raise LatbenchError(f"{where} (no {key!r}; {hint})")
    schema.fields(rep, source, {"rows": list, "raw_sum": dict, "table_provenance": str},
                  {"calibration": (dict, None), "stored_calibration": (dict, None),
                   "calibrated_held_out": (dict, None)}, extra=True)
    rows = rep["rows"]
    if not rows:
        raise LatbenchError(f"{source}: the report has no networks to plot")
    for i, row in enumerate(rows):
        at = f"{source}: rows[{i}]"
        schema.fields(row, at, {}, extra=True)
        for field in ROW_FIELDS + tuple(f for _, f, _, _ in SERIES[1:]):
            if field in ROW_FIELDS or row.get(field) is not None:
                if field not in row:
                    raise LatbenchError(f"{at} lacks a positive {field} ({hint})")
                schema.number(row[field], f"{at}.{field}", MIN_US, MAX_US)
    for block, _, _, _ in SERIES:
        metrics = rep.get(block)
        if metrics is None:
            continue
        at = f"{source}: {block}"
        m = schema.fields(metrics, at, {"within_3_pct": float, "within_10_pct": float},
                          {"kendall_tau": (float, None)}, extra=True)
        for name in ("within_3_pct", "within_10_pct"):
            schema.number(m[name], f"{at}.{name}", 0.0, 100.0)
        if m["kendall_tau"] is not None:
            schema.number(m["kendall_tau"], f"{at}.kendall_tau", -1.0, 1.0)
    for block in ("calibration", "stored_calibration"):
        model = (rep.get(block) or {}).get("model")
        if model is not None and not isinstance(model, str):
            raise LatbenchError(f"{source}: {block}.model: must be a string")
