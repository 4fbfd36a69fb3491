"""From a session's archive to the files a commit ships (run on any machine, no GPU needed).

    latbench session ship FILES_AT          # FILES_AT: the folder the device tool filled

copies the grown table and its networks log to tables/, and to bench/results/<gpu>/ the reports
(validation.json merged part by part into the committed one: a part this session did not
measure, such as a protocol comparison an earlier session shipped, is kept), the benchmark rows,
and the session record and log as session-<start>.json/.log (one pair per session); then draws
the validation charts and the factor chart there from the data (charts cost no device time, so
the session does not draw them).
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import zlib
from pathlib import Path

from latbench import plots, schema
from latbench.errors import LatbenchError
from latbench.files import copy_file, write_bytes
from latbench.jsonlog import JsonLog
from latbench.limits import MAX_US, MIN_US
from latbench.plots.validate_chart import check_report
from latbench.table import device_slug, load_table
from latbench.validate import read_networks

REPORT_FILES = ("validation.json", "harness_bench.jsonl", "session.json", "session.log")


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
    if table_name is not None and (not isinstance(table_name, str) or device_slug(table_name) is None):
        raise LatbenchError(f"{archive / 'session.json'}: table: {str(table_name)[:60]!r} is not a table file name "
                            "(DEVICE-BACKEND-PRECISION-bBATCH.jsonl)")
    stamp = re.sub(r"[^0-9T]", "", str(state.get("started_at", "")))[:15]
    if not re.fullmatch(r"\d{8}T\d{6}", stamp):
        raise LatbenchError(f"{archive / 'session.json'}: started_at: not a time the session wrote "
                            f"({str(state.get('started_at'))[:40]!r})")
    if table_name is None or not (archive / table_name).is_file():
        raise LatbenchError(f"{archive}: the session archived no table (see its session.log)")
    load_table(archive / table_name)  # a damaged table is refused before anything is copied
    networks = table_name.removesuffix(".jsonl") + ".networks.jsonl"
    if (archive / networks).is_file():
        read_networks(JsonLog(archive / networks, "networks log"))
    reports = {name: archive / name for name in REPORT_FILES if (archive / name).is_file()}
    results = repo / "bench" / "results" / device_slug(table_name)
    merged = None
    if "validation.json" in reports:
        _validation_parts(reports["validation.json"])
        merged = _merged_reports(results / "validation.json", reports.pop("validation.json"))
    written = []
    for name in (table_name, networks):
        if (archive / name).is_file():
            written.append(copy_file(archive / name, repo / "tables" / name))
    for name, src in reports.items():
        dest = results / (f"session-{stamp}{Path(name).suffix}" if name.startswith("session.") else name)
        written.append(copy_file(src, dest))
    if merged is not None:
        written.append(write_bytes(results / "validation.json", (json.dumps(merged, indent=1) + "\n").encode()))
    written += draw(results, repo / "tables" / table_name)
    return written


def _merged_reports(committed: Path, new: Path) -> dict:
    """The committed validation.json with the parts of `new` put in (a part in both: the new one;
    the protocol comparison network by network, keeping the one with more protocols summed)."""
    old = schema.read_object(committed, "committed validation reports") if committed.is_file() else {}
    fresh = schema.read_object(new, "session's validation reports")
    merged = old | fresh
    if "protocol" in fresh:
        ours = check_protocol(fresh["protocol"], f"{new}: protocol")
        theirs = check_protocol(old["protocol"], f"{committed}: protocol") if "protocol" in old else None
        merged["protocol"] = _merged_protocol(theirs, ours) if theirs else ours
    return merged


def check_protocol(part, where: str) -> dict:
    """A protocol comparison as the session's protocol step writes it (LatbenchError otherwise)."""
    schema.fields(part, where, {"main_protocol": str, "networks": list, "median_us": dict}, extra=True)
    for i, net in enumerate(part["networks"]):
        at = f"{where}.networks[{i}]"
        schema.fields(net, at, {"name": str, "e2e_us": float, "sum_us": dict}, extra=True)
        schema.number(net["e2e_us"], f"{at}.e2e_us", MIN_US, MAX_US)
        for protocol, value in net["sum_us"].items():
            if value is not None:
                schema.number(value, f"{at}.sum_us.{protocol[:20]}", MIN_US, MAX_US)
    for protocol, medians in part["median_us"].items():
        schema.check_type(medians, dict, f"{where}.median_us.{protocol[:20]}")
    return part


def _merged_protocol(old: dict, new: dict) -> dict:
    def summed(net: dict) -> int:
        return sum(v is not None for v in net["sum_us"].values())

    nets = {n["name"]: n for n in old["networks"]}
    for n in new["networks"]:
        if summed(n) >= summed(nets.get(n["name"], n)):
            nets[n["name"]] = n
    medians = {p: old["median_us"].get(p, {}) | m for p, m in new["median_us"].items()}
    return new | {"networks": sorted(nets.values(), key=lambda n: n["e2e_us"]),
                  "median_us": old["median_us"] | medians}


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
