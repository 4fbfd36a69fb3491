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
import re
import sys
import tempfile
import zlib
from pathlib import Path

from latbench import plots, schema
from latbench.errors import LatbenchError
from latbench.files import check_output, copy_file, write_json
from latbench.jsonlog import JsonLog
from latbench.limits import MAX_US, MIN_US
from latbench.plots.validate_chart import check_report
from latbench.provenance import default_table_name
from latbench.table import device_slug, identity_diff, load_table, networks_path
from latbench.validate import read_networks

REPORT_FILES = ("validation.json", "harness_bench.jsonl", "session.json", "session.log")


#: A report's name in validation.json: it names a chart file.
PART = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Largest archived file unzipped (the device tool brings back at most a few hundred MiB).
MAX_UNZIPPED = 4 << 30


def _unzipped(folder: Path, work: Path) -> Path:
    """The archive as plain files: `folder` itself, or where it holds NAME.gz without NAME (the
    session gzips files over 15 MiB), a copy in `work` with those unzipped. The archive is an
    input: nothing is written into it. Unzipping streams (a GiB-sized table is never held)."""
    gzipped = [gz for gz in sorted(folder.glob("*.gz")) if not gz.with_suffix("").exists()]
    if not gzipped:
        return folder
    for src in folder.iterdir():
        if src.is_file() and src not in gzipped:
            (work / src.name).symlink_to(src.resolve())
    for gz in gzipped:
        target = work / gz.with_suffix("").name
        try:
            with gzip.open(gz) as f, open(target, "wb") as out:
                copied = 0
                while chunk := f.read(1 << 20):
                    copied += len(chunk)
                    if copied > MAX_UNZIPPED:
                        raise LatbenchError(f"{gz}: unzips to more than {MAX_UNZIPPED >> 30} GiB: "
                                            "not a session archive")
                    out.write(chunk)
        except (OSError, EOFError, zlib.error) as err:
            raise LatbenchError(f"{gz}: not a readable gzip file ({err}); the archive is damaged") from None
    return work


def ship(archive: Path, repo: Path) -> list[Path]:
    """Place an archive's files into `repo`; returns the paths written. Everything is checked
    before anything is written: the table as a table that grows the committed one (same
    identity, every committed row still there), its name against its metadata, the reports as
    JSON, every destination as writable; then the reports are written, the table last, each
    file atomically."""
    archive = Path(archive)
    if not archive.is_dir():
        raise LatbenchError(f"{archive}: not a folder; give the folder that holds a session's files")
    if not (archive / "session.json").exists():
        raise LatbenchError(f"{archive}: not a session archive (no session.json)")
    with tempfile.TemporaryDirectory(prefix="latbench-ship-") as work:
        return _ship(_unzipped(archive, Path(work)), archive, repo)


def _ship(files: Path, archive: Path, repo: Path) -> list[Path]:
    state = schema.read_object(files / "session.json", "session record")
    table_name = state.get("table")  # set once any step named the table
    if table_name is not None and (not isinstance(table_name, str) or device_slug(table_name) is None):
        raise LatbenchError(f"{archive / 'session.json'}: table: {str(table_name)[:60]!r} is not a table file name "
                            "(DEVICE-BACKEND-PRECISION-bBATCH.jsonl)")
    stamp = re.sub(r"[^0-9T]", "", str(state.get("started_at", "")))[:15]
    if not re.fullmatch(r"\d{8}T\d{6}", stamp):
        raise LatbenchError(f"{archive / 'session.json'}: started_at: not a time the session wrote "
                            f"({str(state.get('started_at'))[:40]!r})")
    if table_name is None or not (files / table_name).is_file():
        raise LatbenchError(f"{archive}: the session archived no table (see its session.log)")
    table = load_table(files / table_name)  # a damaged table is refused before anything is copied
    networks = table_name.removesuffix(".jsonl") + ".networks.jsonl"
    if (files / networks).is_file():
        read_networks(JsonLog(files / networks, "networks log"))
    _check_growth(table, files / table_name, repo / "tables" / table_name, archive / table_name)
    reports = {name: files / name for name in REPORT_FILES if (files / name).is_file()}
    results = repo / "bench" / "results" / device_slug(table_name)
    merged, charts = None, {}
    if "validation.json" in reports:
        merged = _merged_reports(results / "validation.json", reports.pop("validation.json"))
        charts = _chartable(merged, results / "validation.json")  # checked before anything is written
    copies = {results / (f"session-{stamp}{Path(name).suffix}" if name.startswith("session.") else name): src
              for name, src in reports.items()}
    tables = {repo / "tables" / name: files / name for name in (networks, table_name) if (files / name).is_file()}
    for dest in [*copies, *tables, results / "validation.json"]:
        check_output(dest)  # every destination writable before the first is written
    written = [copy_file(src, dest) for dest, src in copies.items()]
    if merged is not None:
        written.append(write_json(results / "validation.json", merged))
    written += [copy_file(src, dest) for dest, src in tables.items()]  # the table last
    written += draw(results, repo / "tables" / table_name, charts)
    return written


def _check_growth(table, path: Path, committed: Path, shown: Path) -> None:
    """A session's table grows the committed one: its name agrees with its metadata, and when a
    table of that name is committed, it has the same identity and begins with the committed
    file, byte for byte, as its networks log begins with the committed log (a session copies
    them and only appends: a row, a calibration or a network changed or dropped is refused).
    LatbenchError naming the difference otherwise."""
    name = Path(default_table_name(table.meta)).stem
    if not re.fullmatch(re.escape(name) + r"(-[0-9a-f]{8})?", committed.stem):
        raise LatbenchError(f"{shown}: its metadata names it {name}.jsonl; a session names its table by "
                            "its own settings")
    if not committed.is_file():
        return
    old = load_table(committed)
    diff = identity_diff(old.meta, table.meta)
    if diff:
        raise LatbenchError(f"{shown}: measured with other settings than the committed {committed} "
                            f"({'; '.join(diff)}); the committed table is not replaced")
    for ours, theirs, what in ((path, committed, "table"),
                               (networks_path(path), networks_path(committed), "networks log")):
        if theirs.is_file() and not _grows(ours, theirs):
            raise LatbenchError(f"{shown}: its {what} is not the committed {theirs} grown (records of it were "
                                "changed or dropped); the committed one is not replaced (merge tables with "
                                "latbench table merge)")


def _grows(path: Path, committed: Path) -> bool:
    """`path` begins with the bytes of `committed` (a log appended to; the newline a log without a
    final one gets at its next append allowed)."""
    old = committed.read_bytes()
    if not path.is_file() or path.stat().st_size < len(old):
        return False
    with open(path, "rb") as f:
        head = f.read(len(old) + 1)
    return head[:len(old)] == old and (old.endswith(b"\n") or not old or len(head) == len(old)
                                       or head[len(old):] == b"\n")


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


def _chartable(parts: dict, path: Path) -> dict:
    """The reports of a validation.json (`parts`, read from `path`) that have networks to chart,
    each checked."""
    out = {}
    for part, rep in parts.items():
        if isinstance(rep, dict) and rep.get("rows"):
            if not PART.fullmatch(part):
                raise LatbenchError(f"{path}: {part[:40]!r} is not a report name (letters, digits, - and _)")
            check_report(rep, f"{path}: {part}")
            out[part] = rep
    return out


def draw(results: Path, table: Path, charts: dict) -> list[Path]:
    """Validation charts (one per report of `charts`, checked by `_chartable`) and the factor
    chart, from the shipped data."""
    paths: list[Path] = []
    for part, rep in charts.items():
        paths += plots.validate(rep, results / f"validate_{part}.png").paths
    try:
        paths += plots.factors(table, results).paths
    except LatbenchError as err:  # a session cut before the factor grid: say so, ship the rest
        print(f"factor chart not drawn: {err}", file=sys.stderr)
    return paths
