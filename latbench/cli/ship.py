"""From a session's archive to the files a commit ships (run on any machine, no GPU needed).

    latbench session ship FILES_AT          # FILES_AT: the folder the device tool filled

copies the grown table and its networks log to tables/, the reports, benchmark rows, session
record and log to bench/results/<gpu>/, and draws the validation charts and the factor chart
there from the data (charts cost no device time, so the session does not draw them).
"""

from __future__ import annotations

import gzip
import re
import sys
import zlib
from pathlib import Path

from latbench import plots, schema
from latbench.errors import LatbenchError
from latbench.files import copy_file, write_bytes
from latbench.jsonlog import JsonLog
from latbench.plots.validate_chart import check_report
from latbench.table import load_table
from latbench.validate import read_networks

REPORT_FILES = ("validation.json", "harness_bench.jsonl", "session.json", "session.log")


#: What a session names its table: a plain file name, no folders (it is copied into tables/).
TABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.jsonl")
#: A report's name in validation.json: it names a chart file.
PART = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Largest archived file unzipped (the device tool brings back at most a few hundred MiB).
MAX_UNZIPPED = 4 << 30


def _unzip(folder: Path) -> None:
    for gz in folder.glob("*.gz"):
        target = gz.with_suffix("")
        if target.exists():
            continue
        try:
            with gzip.open(gz) as f:
                data = f.read(MAX_UNZIPPED + 1)
        except (OSError, EOFError, zlib.error) as err:
            raise LatbenchError(f"{gz}: not a readable gzip file ({err}); the archive is damaged") from None
        if len(data) > MAX_UNZIPPED:
            raise LatbenchError(f"{gz}: unzips to more than {MAX_UNZIPPED >> 30} GiB: not a session archive")
        write_bytes(target, data)


def ship(archive: Path, repo: Path) -> list[Path]:
    """Place an archive's files into `repo`; returns the paths written. Everything is checked
    before anything is written (the table as a table, the reports as JSON), and each file is
    written atomically."""
    archive = Path(archive)
    if not archive.is_dir():
        raise LatbenchError(f"{archive}: not a folder; give the folder that holds a session's files")
    if not (archive / "session.json").exists():
        raise LatbenchError(f"{archive}: not a session archive (no session.json)")
    _unzip(archive)
    state = schema.read_object(archive / "session.json", "session record")
    table_name = state.get("table")  # set once any step named the table
    if table_name is not None and (not isinstance(table_name, str) or not TABLE_NAME.fullmatch(table_name)):
        raise LatbenchError(f"{archive / 'session.json'}: table: {str(table_name)[:60]!r} is not a table file name")
    if table_name is None or not (archive / table_name).is_file():
        raise LatbenchError(f"{archive}: the session archived no table (see its session.log)")
    load_table(archive / table_name)  # a damaged table is refused before anything is copied
    networks = table_name.removesuffix(".jsonl") + ".networks.jsonl"
    if (archive / networks).is_file():
        read_networks(JsonLog(archive / networks, "networks log"))
    reports = {name: archive / name for name in REPORT_FILES if (archive / name).is_file()}
    if "validation.json" in reports:
        _validation_parts(reports["validation.json"])
    device = table_name.split("-torch-")[0]
    written = []
    for name in (table_name, networks):
        if (archive / name).is_file():
            written.append(copy_file(archive / name, repo / "tables" / name))
    results = repo / "bench" / "results" / device
    for name, src in reports.items():
        written.append(copy_file(src, results / name))
    written += draw(results, repo / "tables" / table_name)
    return written


def _validation_parts(path: Path) -> dict:
    """The reports of a session's validation.json that have networks to chart, each checked."""
    parts = schema.read_object(path, "session's validation reports")
    out = {}
    for part, rep in parts.items():
        if isinstance(rep, dict) and rep.get("rows"):
            if not PART.fullmatch(part):
                raise LatbenchError(f"{path}: {part[:40]!r} is not a report name (letters, digits, - and _)")
            check_report(rep, f"{path}: {part}")
            out[part] = rep
    return out


def draw(results: Path, table: Path) -> list[Path]:
    """Validation charts (one per report part) and the factor chart, from the shipped data."""
    paths: list[Path] = []
    report = results / "validation.json"
    if report.is_file():
        for part, rep in _validation_parts(report).items():
            paths += plots.validate(rep, results / f"validate_{part}.png").paths
    try:
        paths += plots.factors(table, results).paths
    except LatbenchError as err:  # a session cut before the factor grid: say so, ship the rest
        print(f"factor chart not drawn: {err}", file=sys.stderr)
    return paths
