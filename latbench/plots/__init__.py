"""Charts of latbench's data, each written as PNG and SVG (same stem) and returned with its figure.

    factors(table, out_dir)            latency cost of each factor of the GPUNet space (paper Fig. 3)
    groups(latency_ms, out, edges)     predicted-latency histogram of a Sobol pool with its groups
    pareto(trials, out, provenance)    accuracy vs predicted latency of a search, its Pareto front
    validate(report, out)              predicted vs measured whole-network latency
    compare(table_a, table_b, out)     per-block latency ratio of two tables, by block kind

Charts take data (tables, arrays, records, reports) and never measure: what is missing is
measured before drawing, by the command that asks for the chart.

Each returns a `Chart` (figure, [png, svg]); `factors` a `FactorChart` that also lists the keys it
could not find. Every chart is titled with the device, backend, precision and batch of its data.
"""

from __future__ import annotations

from pathlib import Path

from latbench.plots.common import Chart, FactorChart
from latbench.plots.compare_chart import compare
from latbench.plots.factor_chart import factor_keys, factors
from latbench.plots.group_chart import groups
from latbench.plots.pareto_chart import pareto
from latbench.plots.validate_chart import validate


def plot_validate(report: dict | str | Path, out: str | Path) -> list[Path]:
    """The validation chart of `latbench validate --plot`; returns [png, svg]. A stable name."""
    return validate(report, out).paths


__all__ = ["Chart", "FactorChart", "compare", "factor_keys", "factors", "groups", "pareto", "plot_validate",
           "validate"]
