"""From a session's archive to the files a commit ships (run on any machine, no GPU needed).

    latbench session ship FILES_AT          # FILES_AT: the folder the device tool filled

copies the grown table and its networks log to tables/, the reports, benchmark rows, session
record and log to bench/results/<gpu>/, and draws the validation charts and the factor chart
there from the data (charts cost no device time, so the session does not draw them).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

from latbench import plots
from latbench.errors import LatbenchError

REPORT_FILES = ("validation.json", "harness_bench.jsonl", "session.json", "session.log")


def _unzip(folder: Path) -> None:
    for gz in folder.glob("*.gz"):
        target = gz.with_suffix("")
        if not target.exists():
            target.write_bytes(gzip.decompress(gz.read_bytes()))


def ship(archive: Path, repo: Path) -> list[Path]:
    """Place an archive's files into `repo`; returns the paths written."""
    archive = Path(archive)
    if not (archive / "session.json").is_file():
        raise LatbenchError(f"{archive}: not a session archive (no session.json)")
    _unzip(archive)
    state = json.loads((archive / "session.json").read_text())
    table_name = state.get("table")  # set once any step named the table
    if table_name is None or not (archive / table_name).is_file():
        raise LatbenchError(f"{archive}: the session archived no table (see its session.log)")
    device = table_name.split("-torch-")[0]
    written = []
    for name in (table_name, table_name.removesuffix(".jsonl") + ".networks.jsonl"):
        if (archive / name).is_file():
            written.append(Path(shutil.copy2(archive / name, repo / "tables" / name)))
    results = repo / "bench" / "results" / device
    results.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:
        if (archive / name).is_file():
            written.append(Path(shutil.copy2(archive / name, results / name)))
    written += draw(results, repo / "tables" / table_name)
    return written


def draw(results: Path, table: Path) -> list[Path]:
    """Validation charts (one per report part) and the factor chart, from the shipped data."""
    paths: list[Path] = []
    report = results / "validation.json"
    if report.is_file():
        for part, rep in json.loads(report.read_text()).items():
            if isinstance(rep, dict) and rep.get("rows"):
                paths += plots.validate(rep, results / f"validate_{part}.png").paths
    try:
        paths += plots.factors(table, results).paths
    except LatbenchError as err:  # a session cut before the factor grid: say so, ship the rest
        print(f"factor chart not drawn: {err}")
    return paths
