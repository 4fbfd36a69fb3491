"""`latbench session run|ship`: the GPU session runner (latbench.session) and the step that turns
its archive into committed files (latbench.cli.ship)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from latbench.cli import app
from latbench.cli.options import JsonOpt, emit_json, number_value, path_value

session_app = typer.Typer(help="Run a GPU session, or ship what one brought back.", no_args_is_help=True)
app.add_typer(session_app, name="session")


@session_app.command("run")
def run(out: Annotated[Path, typer.Option(help="Archive folder.", parser=path_value)] = Path("session_out"),
        budget: Annotated[Optional[float], typer.Option(parser=number_value(10, 3600), metavar="S", help="Seconds (10-3600) for all steps "
                                                        "(default 360 on a GPU, 75 in a rehearsal).")] = None,
        rehearse: Annotated[bool, typer.Option(help="The same steps on this CPU, tiny sizes.")] = False,
        work: Annotated[Optional[Path], typer.Option(help="Work folder (default: a fixed temp folder).",
                                                     parser=path_value)] = None,
        tables: Annotated[Optional[Path], typer.Option(help="Committed tables (default: tables/).",
                                                       parser=path_value)] = None,
        results: Annotated[Optional[Path], typer.Option(
            help="Committed results (default: bench/results/): evidence shipped there is not measured again.",
            parser=path_value)] = None):
    """Turn a lent GPU's minutes into a grown table, reports and benchmarks (python -m latbench.session
    runs the same without an install)."""
    from latbench.session.__main__ import check_folders, default_work, main  # torch only in the steps

    check_folders(out, work or default_work("rehearsal" if rehearse else "gpu"), tables, results)
    argv = ["--out", str(out)] + (["--budget", str(budget)] if budget else []) + (["--rehearse"] if rehearse else [])
    argv += (["--work", str(work)] if work else []) + (["--tables", str(tables)] if tables else [])
    argv += ["--results", str(results)] if results else []
    raise typer.Exit(main(argv))


@session_app.command("ship")
def ship(archive: Annotated[Path, typer.Argument(help="The folder holding a session's files.", parser=path_value)],
         json_out: JsonOpt = False):
    """Copy a session's table to tables/ and its reports to bench/results/<gpu>/, with charts."""
    from latbench.cli.ship import ship as place
    from latbench.session import repo_root

    written = place(archive, repo_root())
    if json_out:
        emit_json({"files": [str(p) for p in written]})
    else:
        for p in written:
            print(f"wrote {p}")
