"""`latbench demo`: the main job end to end on the machine at hand (see latbench.demo)."""

from __future__ import annotations

from pathlib import Path

import typer

from latbench.cli import app


@app.command("demo")
def demo(out: Path = typer.Option(Path("demo_out"), help="Output folder (resumes if present)."),
         quick: bool = typer.Option(False, help="Shorter timing: faster, noisier."),
         budget: int = typer.Option(8, help="Search trials.")):
    """Build a table here, validate it, predict GPUNet-0/1/2, search, and draw the charts."""
    from latbench.demo import run

    run(out, quick=quick, search_budget=budget)
