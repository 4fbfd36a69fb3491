"""`python -m latbench.session`: the GPU session runner (see latbench.session).

Plain argparse rather than the typer CLI: the runner must start on a machine where nothing can
be installed, so it leans on the standard library and what that machine has.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from latbench.errors import LatbenchError
from latbench.files import check_output_dir
from latbench.session import Session
from latbench.session.plan import gpu_plan, rehearsal_plan
from latbench.space import load_space


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m latbench.session", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command")
    step = sub.add_parser("step", help=argparse.SUPPRESS)  # internal: one step in its own process
    step.add_argument("name")
    step.add_argument("--work", type=Path, required=True)
    step.add_argument("--seconds", type=float, required=True, help="time the step has, from its start")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "session_out"),
                    help="archive folder (default $OUT, else ./session_out)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for all steps (default 360 on a GPU, 75 in a rehearsal)")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a fixed temp folder)")
    ap.add_argument("--tables", type=Path, default=None, help="committed tables (default: tables/)")
    ap.add_argument("--results", type=Path, default=None,
                    help="committed results (default: bench/results/); evidence shipped there is not measured again")
    ap.add_argument("--rehearse", action="store_true", help="run the same steps on this CPU, tiny sizes")
    args = ap.parse_args(argv)

    if args.command == "step":
        from latbench.session.steps import run_step  # torch: only in a step's own process

        return run_step(args.name, args.work, args.seconds)


    if args.budget is not None and not 10 <= args.budget <= 3600:
        print(f"latbench session: error: --budget {args.budget:g}: use 10 to 3600 seconds", file=sys.stderr)
        return 2
    if args.rehearse:
        plan, budget = rehearsal_plan(load_space("tiny")), args.budget or 75.0
    else:
        plan, budget = gpu_plan(), args.budget or 360.0
    work = args.work or default_work(plan.mode)
    try:
        check_folders(args.out, work, args.tables, args.results)
    except LatbenchError as err:
        print(f"latbench session: error: {err}", file=sys.stderr)
        return 2
    Session(plan, args.out, work, budget, args.tables, args.results).run()
    return 0


def default_work(mode: str) -> Path:
    """The work folder of a session of `mode` ("gpu" or "rehearsal") when none is given."""
    return Path(tempfile.gettempdir()) / f"latbench-session-{mode}"


def check_folders(out: Path, work: Path, tables: Path | None, results: Path | None = None) -> None:
    """The archive and work folders writable and apart; the tables and results folders folders if
    they exist (a missing one means nothing committed yet). LatbenchError otherwise."""
    check_output_dir(out, "archive folder")
    check_output_dir(work, "work folder")
    if os.path.realpath(out) == os.path.realpath(work):
        raise LatbenchError(f"--out and --work both name {out}; give two folders (the archive holds copies "
                            "of the work folder's files)")
    if tables is not None and os.path.lexists(tables) and not tables.is_dir():  # missing: no table yet
        raise LatbenchError(f"--tables {tables}: not a folder; give the folder of committed tables (tables/)")
    if results is not None and os.path.lexists(results) and not results.is_dir():
        raise LatbenchError(f"--results {results}: not a folder; give the folder of committed results (bench/results/)")


if __name__ == "__main__":
    sys.exit(main())
