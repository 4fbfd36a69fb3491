"""`latbench plot factors|groups|pareto|validate|compare`: charts as PNG + SVG (latbench.plots).

The commands load the data (tables, pools, search results, reports), measure what a chart lacks
when asked (`--missing measure`, on the table's device), and hand the data to the charts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional, Tuple

import typer

from latbench.cli import app
from latbench.cli.options import ChartMissing, JsonOpt, MaybeTableOpt, TableOpt, emit_json, path_value
from latbench.errors import LatbenchError

plot_app = typer.Typer(help="Draw charts of tables, pools, searches and validations (PNG + SVG).",
                       no_args_is_help=True)
app.add_typer(plot_app, name="plot")

OUT_DIR = Path("plots")
ChartOut = Annotated[Optional[Path], typer.Option(help="Chart file (an SVG is written beside it).", parser=path_value)]


def wrote(paths: list[Path], json_out: bool) -> None:
    if json_out:
        emit_json({"files": [str(p) for p in paths]})
    else:
        for p in paths:
            print(f"wrote {p}")


def chart_file(out: Optional[Path], default: str, inputs: dict) -> Path:
    """The chart's path (PNG and SVG are written beside each other), refused when it is not
    writable or when one of its two files is one of the chart's `inputs` ({option: path})."""
    from latbench.files import check_distinct, check_output
    from latbench.plots.common import chart_paths

    out = check_output(out or OUT_DIR / default, "chart file")
    check_distinct({**inputs, "--out": chart_paths(out)})
    return out


@plot_app.command("factors")
def factors_cmd(
    table: TableOpt,
    base: Annotated[Optional[str], typer.Option(help="Another base block key; the grid's factors are applied to it.")] = None,
    out: Annotated[Path, typer.Option(help="Output folder (factors.png, factors.svg).", parser=path_value)] = OUT_DIR,
    missing: Annotated[ChartMissing, typer.Option(
        help="Blocks the table lacks: skip (left out of the chart) or measure (on the table's device).")] = ChartMissing.skip,
    grid: Annotated[str, typer.Option(help="Grid file with the base block and its factors.")] = "factor_grid",
    json_out: JsonOpt = False,
    measure: Annotated[bool, typer.Option("--measure", hidden=True)] = False,
):
    """Latency cost of each factor of the GPUNet space (paper Fig. 3); missing blocks are listed."""
    from latbench.files import check_output_dir
    from latbench.plots import factor_keys, factors

    check_output_dir(out, "chart folder")
    if measure or missing == ChartMissing.measure:
        _measure_into(table, factor_keys(grid, base))
    wrote(factors(table, out, grid=grid, base_key=base).paths, json_out)


def _measure_into(table_path: Path, specs: list) -> None:
    """Measure the specs the table lacks with its own backend and harness, on this machine (which
    must be the table's device)."""
    from latbench.build import build_table
    from latbench.harness import HarnessSettings
    from latbench.provenance import backend_for_table
    from latbench.table import load_table

    table = load_table(table_path)
    lacking = [s for s in specs if s.key not in table.ok()]
    if not lacking:
        return
    try:
        be = backend_for_table(table)  # refuses when this machine is not the table's device
    except LatbenchError as err:
        raise LatbenchError(f"cannot measure the missing blocks on this machine: {err}") from None
    build_table(lacking, table_path, be, HarnessSettings.from_dict(table.meta["harness"]), retry_failed=True)


@plot_app.command("groups")
def groups_cmd(
    pool: Annotated[Path, typer.Option(help="Pool file from latbench sample --out.", parser=path_value)],
    groups: Annotated[Optional[str], typer.Option(help="Group boundaries in ms, e.g. 0.5,1,2 (default: the pool's).")] = None,
    out: ChartOut = None,
    json_out: JsonOpt = False,
):
    """Predicted-latency histogram of a Sobol pool with its latency groups and their counts."""
    from latbench.cli.search_cmds import parse_groups
    from latbench.plots import groups as groups_chart
    from nas.pool import load_pool

    out = chart_file(out, "groups.png", {"--pool": pool})
    p = load_pool(pool)
    edges = parse_groups(groups) if groups else list(p.meta.get("groups") or [])
    wrote(groups_chart(p.latency_ms, out, edges, p.meta).paths, json_out)


@plot_app.command("pareto")
def pareto_cmd(
    results: Annotated[Path, typer.Option(help="Search folder (with results.jsonl).", parser=path_value)],
    table: MaybeTableOpt = None,
    out: ChartOut = None,
    json_out: JsonOpt = False,
):
    """Top-1 vs predicted latency of a search's trials, its Pareto front and latency group;
    GPUNet-0/1/2 predicted with --table (default: the search's table) as vertical lines."""
    from latbench.plots import pareto
    from latbench.predictor import predict_references
    from latbench.table import identity_diff, load_table
    from nas.results import ResultsLog, check_history, space_of

    out = chart_file(out, "pareto.png", {"--results": Path(results) / "results.jsonl", "--table": table})
    log = ResultsLog(results)
    if not log.path.is_file():
        raise LatbenchError(f"{results}: no results.jsonl (run latbench search --out {results})")
    history = log.read()
    space = space_of(history.config)
    if space is not None:
        check_history(history, space, log.path)
    config = history.config or {}
    searched_path = config.get("table")
    try:
        here = bool(searched_path) and Path(searched_path).is_file()
    except OSError:  # a name no file can have
        here = False
    searched = load_table(searched_path) if here else None
    ref_table = load_table(table) if table is not None else searched
    if ref_table is None:
        raise LatbenchError(f"{log.path}: the search's table {searched_path!r} is not here; pass --table so that "
                            "the chart can name the device, backend, precision and batch")
    provenance = (searched or ref_table).describe()
    if searched is not None and ref_table is not searched and identity_diff(searched.meta, ref_table.meta):
        provenance += f"\nGPUNet lines: {ref_table.describe()}"
    refs = {name: (p.latency_ms, p.measured_fraction) for name, p in predict_references(ref_table).items()}
    group = (config["latency_min"], config["latency_max"]) if "latency_max" in config else None
    chart = pareto(history.done, out, provenance, group_ms=group, method=config.get("method", "search"),
                   references=refs)
    wrote(chart.paths, json_out)


@plot_app.command("validate")
def validate_cmd(
    report: Annotated[Path, typer.Option(help="Report JSON from latbench validate.", parser=path_value)],
    out: ChartOut = None,
    json_out: JsonOpt = False,
):
    """Predicted (raw sum, calibrated held out) vs measured whole-network latency."""
    from latbench.plots import validate

    wrote(validate(report, chart_file(out, "validate.png", {"--report": report})).paths, json_out)


@plot_app.command("compare")
def compare_cmd(
    table: Annotated[List[Path], typer.Option(
        "--table", help="Two tables A and B (--table A --table B); the chart shows B / A.",
        parser=path_value)] = [],  # noqa: B006
    tables: Annotated[Optional[Tuple[Path, Path]], typer.Option("--tables", hidden=True, parser=path_value)] = None,
    out: ChartOut = None,
    json_out: JsonOpt = False,
):
    """Per-block latency ratio B / A by block kind over the keys both tables measured."""
    from latbench.plots import compare

    pair = list(table) + list(tables or [])
    if len(pair) != 2:
        raise LatbenchError(f"give exactly two tables (--table A --table B), got {len(pair)}")
    wrote(compare(pair[0], pair[1], chart_file(out, "compare.png", {"--table": pair})).paths, json_out)
