"""`latbench demo`: the main job end to end on the machine at hand (see latbench.cli.demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latbench.cli import app
from latbench.cli.options import JsonOpt, emit_json, path_value


@app.command("demo")
def demo(out: Annotated[Path, typer.Option(help="Output folder (resumes if present).",
                                           parser=path_value)] = Path("demo_out"),
         quick: Annotated[bool, typer.Option(help="Shorter timing: faster, noisier.")] = False,
         budget: Annotated[int, typer.Option(min=1, max=1000, help="Search trials.")] = 8,
         json_out: JsonOpt = False):
    """Build a table here, validate it, predict GPUNet-0/1/2, search, and draw the charts."""
    from latbench.cli.demo import run  # torch, the search and matplotlib: only when the demo runs
    from latbench.files import check_output_dir

    check_output_dir(out, "demo output folder")
    summary = run(out, quick=quick, search_budget=budget)
    if json_out:
        emit_json(summary)
