"""`latbench plot factors|groups|pareto|validate|compare`: charts as PNG + SVG (latbench.plots)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import typer

from latbench.cli import app

plot_app = typer.Typer(help="Draw charts of tables, pools, searches and validations (PNG + SVG).",
                       no_args_is_help=True)
app.add_typer(plot_app, name="plot")

OUT_DIR = Path("plots")


def wrote(paths: list[Path]) -> None:
    for p in paths:
        print(f"wrote {p}")


@plot_app.command("factors")
def factors_cmd(
    table: Path = typer.Option(..., help="Latency table with the factor grid's blocks."),
    base: Optional[str] = typer.Option(None, help="Another base block key; the grid's factors are applied to it."),
    out: Path = typer.Option(OUT_DIR, help="Output folder (factors.png, factors.svg)."),
    measure: bool = typer.Option(False, help="First measure the missing blocks (on the table's device only)."),
    grid: str = typer.Option("factor_grid", help="Grid file with the base block and its factors."),
):
    """Latency cost of each factor of the GPUNet space (paper Fig. 3); missing blocks are listed."""
    from latbench.plots import factors

    wrote(factors(table, out, grid=grid, base_key=base, measure=measure).paths)


@plot_app.command("groups")
def groups_cmd(
    pool: Path = typer.Option(..., help="Pool file from latbench sample --out."),
    groups: Optional[str] = typer.Option(None, help="Group boundaries in ms, e.g. 0.5,1,2 (default: the pool's)."),
    out: Path = typer.Option(OUT_DIR / "groups.png", help="Chart file (an SVG is written beside it)."),
):
    """Predicted-latency histogram of a Sobol pool with its latency groups and their counts."""
    from latbench.cli.search_cmds import parse_groups
    from latbench.plots import groups as groups_chart

    wrote(groups_chart(pool, out, parse_groups(groups) if groups else None).paths)


@plot_app.command("pareto")
def pareto_cmd(
    results: Path = typer.Option(..., help="Search folder (with results.jsonl)."),
    table: Optional[Path] = typer.Option(None, help="Mark GPUNet-0/1/2 predicted with this table."),
    out: Path = typer.Option(OUT_DIR / "pareto.png", help="Chart file (an SVG is written beside it)."),
):
    """Top-1 vs predicted latency of a search's trials, its Pareto front and latency group."""
    from latbench.plots import pareto

    wrote(pareto(results, out, table=table).paths)


@plot_app.command("validate")
def validate_cmd(
    report: Path = typer.Option(..., help="Report JSON from latbench validate."),
    out: Path = typer.Option(OUT_DIR / "validate.png", help="Chart file (an SVG is written beside it)."),
):
    """Predicted (raw sum, calibrated held out) vs measured whole-network latency."""
    from latbench.plots import validate

    wrote(validate(report, out).paths)


@plot_app.command("compare")
def compare_cmd(
    tables: Tuple[Path, Path] = typer.Option(..., help="Two tables A B; the chart shows B / A."),
    out: Path = typer.Option(OUT_DIR / "compare.png", help="Chart file (an SVG is written beside it)."),
):
    """Per-block latency ratio B / A by block kind over the keys both tables measured."""
    from latbench.plots import compare

    wrote(compare(tables[0], tables[1], out).paths)
