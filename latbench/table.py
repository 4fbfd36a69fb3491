"""Latency tables: provenance metadata plus one row per block key, stored as an append-only log.

File format (JSON lines, see latbench.jsonlog): the first record is the metadata
(``{"type": "meta", ...}``), then ``{"type": "row", ...}`` records, and ``{"type":
"calibration", ...}`` records written by `latbench validate`. The last row of a key and the last
calibration win. Times are microseconds per forward pass of one batch.

This module imports neither torch nor TensorRT: tables are read anywhere.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

from latbench import schema
from latbench.backends import NAMES as BACKEND_NAMES
from latbench.backends.base import PROTOCOLS
from latbench.blocks import parse_key
from latbench.calibration import check as check_calibration
from latbench.errors import SpecError, TableError
from latbench.files import check_distinct, check_output, write_bytes
from latbench.harness import HarnessSettings
from latbench.jsonlog import JsonLog, LogCorrupt, encode
from latbench.limits import MAX_US, MIN_US
from latbench.precision import PRECISIONS

FORMAT = "latbench-table/1"
ROW_COLUMNS = ("key", "median_us", "p10_us", "p90_us", "cov", "n", "status", "reason", "measured_at")
UNITS = {
    "median_us": "microseconds per forward pass of one batch (median over samples)",
    "p10_us": "microseconds, 10th percentile",
    "p90_us": "microseconds, 90th percentile",
    "cov": "coefficient of variation of the samples (std / mean)",
    "n": "number of samples; each sample unrolls the block `unroll` times",
}
#: Metadata fields that must agree for two tables (or a table and a run) to be one table. The
#: driver counts by its major version: lent machines of one GPU model differ in the patch level
#: (580.159.03 and 580.159.04 were both seen on H200s) without changing kernels; every row keeps
#: the exact driver it was measured with.
#: Largest batch a table may hold (the CLI's --batch allows the same).
MAX_BATCH = 4096
IDENTITY = ("device.kind", "device.name", "device.driver_major", "device.cuda", "device.threads",
            "backend.name", "backend.version", "backend.options", "backend.heap", "backend.tf32",
            "backend.cudnn_benchmark", "precision", "batch", "protocol", "harness")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _get(meta: dict, dotted: str):
    value = meta
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def driver_major(driver) -> str | None:
    """"580" of "580.159.03"; None without a driver (CPU tables)."""
    return str(driver).split(".")[0] if driver else None


#: The protocol of a table whose metadata names none (written before protocols were recorded).
UNRECORDED_PROTOCOL = "warm"


def identity(meta: dict) -> dict:
    out = {f: _get(meta, f) for f in IDENTITY}
    out["protocol"] = out["protocol"] or UNRECORDED_PROTOCOL
    out["device.driver_major"] = driver_major(_get(meta, "device.driver"))
    return out


def identity_diff(a: dict, b: dict) -> list[str]:
    """Identity fields on which two metadata records differ, as 'field: a != b'."""
    ia, ib = identity(a), identity(b)
    return [f"{f}: {ia[f]!r} != {ib[f]!r}" for f in IDENTITY if ia[f] != ib[f]]


class Table:
    """A loaded table. `rows` maps key -> row dict (last record wins)."""

    def __init__(self, path: Path | None, meta: dict, rows: dict[str, dict], calibration: dict | None):
        self.path, self.meta, self.rows, self.calibration = path, meta, rows, calibration

    # -- provenance ----------------------------------------------------------------------------
    @property
    def device_kind(self) -> str:
        return self.meta["device"]["kind"]

    @property
    def device_name(self) -> str:
        return self.meta["device"]["name"]

    @property
    def backend(self) -> str:
        return self.meta["backend"]["name"]

    @property
    def precision(self) -> str:
        return self.meta["precision"]

    @property
    def batch(self) -> int:
        return self.meta["batch"]

    @property
    def cache_bytes(self) -> int:
        """Last-level cache of the table's device, bytes (the GPU's L2; 0 when not recorded)."""
        dev = self.meta["device"]
        return int(dev.get("l2_bytes") or dev.get("cache_bytes") or 0)

    def describe(self) -> str:
        """One line of provenance: device, backend, precision, batch."""
        m = self.meta
        return (f"{m['device']['name']} ({m['device']['kind']}), {m['backend']['name']} "
                f"{m['backend']['version']}, {m['precision']}, batch {m['batch']}, "
                f"protocol {m.get('protocol', 'warm')}")

    # -- rows ------------------------------------------------------------------------------------
    def ok(self) -> dict[str, float]:
        """key -> median_us of the successfully measured rows."""
        return {k: r["median_us"] for k, r in self.rows.items() if r.get("status") == "ok"}

    def failed(self) -> dict[str, str]:
        return {k: r.get("reason", "") for k, r in self.rows.items() if r.get("status") != "ok"}

    def counts(self) -> dict:
        ok = sum(1 for r in self.rows.values() if r.get("status") == "ok")
        throttled = sum(1 for r in self.rows.values() if r.get("throttled"))
        contended = sum(1 for r in self.rows.values() if r.get("contended"))
        nvml = sum(1 for r in self.rows.values() if r.get("nvml_error"))
        return {"rows": len(self.rows), "ok": ok, "failed": len(self.rows) - ok, "throttled": throttled,
                "contended": contended, "nvml_error": nvml}

    def to_pandas(self):
        """Rows as a DataFrame: the fixed columns first, then any extra columns."""
        import pandas as pd

        df = pd.DataFrame(list(self.rows.values()))
        if df.empty:
            return pd.DataFrame(columns=list(ROW_COLUMNS))
        df = df.drop(columns=["type"], errors="ignore")
        first = [c for c in ROW_COLUMNS if c in df.columns]
        return df[first + [c for c in df.columns if c not in first]]


#: Table formats this latbench reads (and the one it writes, first).
FORMATS = (FORMAT,)
STATUSES = ("ok", "failed")
DEVICE_KINDS = ("cpu", "cuda")


def check_meta(meta, where: str) -> dict:
    """The metadata record of a table, or TableError naming the first bad field and what is
    allowed: a known format, device kind and name, backend, precision, protocol, batch and harness
    settings."""
    m = schema.fields(meta, where, {"type": str}, error=TableError, extra=True)
    fmt = m.get("format")
    if m["type"] != "meta" or not isinstance(fmt, str) or not fmt.startswith("latbench-table/"):
        raise TableError(f"{where}: not a latbench table (the first record must be its {FORMAT} metadata)")
    if fmt not in FORMATS:
        raise TableError(f"{where}: format {fmt!r} is not one this latbench reads ({', '.join(FORMATS)}); "
                         "upgrade latbench")
    m = schema.fields(m, where, {"device": dict, "backend": dict, "precision": str, "batch": int, "harness": dict},
                      {"protocol": (str, UNRECORDED_PROTOCOL)}, error=TableError, extra=True)
    dev = schema.fields(m["device"], f"{where}: device", {"kind": str, "name": str},
                        {"threads": (int, None), "cache_bytes": (int, None), "l2_bytes": (int, None),
                         "driver": (str, None), "cuda": (str, None)}, error=TableError, extra=True)
    schema.choice(dev["kind"], f"{where}: device.kind", DEVICE_KINDS, TableError)
    if not dev["name"].strip():
        raise TableError(f"{where}: device.name is empty")
    for name, hi in (("threads", 1 << 16), ("cache_bytes", 1 << 50), ("l2_bytes", 1 << 50)):
        if dev[name] is not None:
            schema.number(dev[name], f"{where}: device.{name}", 0 if name != "threads" else 1, hi, integer=True,
                          error=TableError)
    be = schema.fields(m["backend"], f"{where}: backend", {"name": str, "version": str},
                       {"options": (dict, None), "heap": (dict, None)}, error=TableError, extra=True)
    schema.choice(be["name"], f"{where}: backend.name", BACKEND_NAMES, TableError)
    schema.choice(m["precision"], f"{where}: precision", PRECISIONS, TableError)
    schema.choice(m["protocol"], f"{where}: protocol", PROTOCOLS, TableError)
    schema.number(m["batch"], f"{where}: batch", 1, MAX_BATCH, integer=True, error=TableError)
    HarnessSettings.from_dict(m["harness"], f"{where}: harness", TableError)
    return meta


def check_times(rec: dict, where: str, error=TableError, optional_quantiles: bool = False) -> float:
    """A record's median_us, p10_us and p90_us (those two may be absent when
    `optional_quantiles`): each within [MIN_US, MAX_US], and p10 <= median <= p90. Returns the
    median; `error` names the field otherwise."""
    median = schema.number(rec.get("median_us"), f"{where}: median_us", MIN_US, MAX_US, error=error)
    default = median if optional_quantiles else None
    p10, p90 = (schema.number(rec.get(k, default), f"{where}: {k}", MIN_US, MAX_US, error=error)
                for k in ("p10_us", "p90_us"))
    slack = 1e-9 * p90  # the three come from one set of samples: equal up to rounding at most
    if p10 > median + slack or median > p90 + slack:
        raise error(f"{where}: p10_us <= median_us <= p90_us does not hold ({p10:g}, {median:g}, {p90:g})")
    return median


def check_row(rec: dict, where: str) -> dict:
    """A row record, or TableError: a key that parses, status ok|failed; an ok row has finite
    positive times with p10 <= median <= p90, a CoV >= 0 and n >= 1 samples."""
    r = schema.fields(rec, where, {"key": str, "status": str}, error=TableError, extra=True)
    try:
        parse_key(r["key"])
    except SpecError as err:
        raise TableError(f"{where}: {err}") from None
    where = f"{where} ({r['key']})"
    schema.choice(r["status"], f"{where}: status", STATUSES, TableError)
    for name in ("reason", "measured_at"):
        if not isinstance(r.get(name, ""), str):
            raise TableError(f"{where}: {name}: must be a string")
    if r["status"] != "ok":
        return rec
    check_times(r, where, TableError)
    schema.number(r.get("cov"), f"{where}: cov", 0.0, 1000.0, error=TableError)
    schema.number(r.get("n"), f"{where}: n", 1, 1 << 40, integer=True, error=TableError)
    return rec


def check_records(path: Path, records: list[tuple[int, dict]]) -> tuple[dict, dict, dict | None]:
    """A table's (line, record) pairs checked one by one, as every reader and writer checks them:
    (metadata, rows by key, last calibration or None); TableError naming the first bad line."""
    meta, rows, calibration = check_meta(records[0][1], f"{path}: metadata"), {}, None
    for line, rec in records[1:]:
        kind = rec.get("type")
        if kind == "row":
            rec = check_row(rec, f"{path}: line {line}")
            rows[rec["key"]] = rec
        elif kind == "calibration":
            calibration = check_calibration(rec, f"{path}: line {line} (calibration)", TableError)
        elif kind == "meta":
            raise TableError(f"{path}: line {line}: a second metadata record (a table has one, on its first line; "
                             "tables of other settings are kept apart)")
        else:
            raise TableError(f"{path}: line {line}: unknown record type {str(kind)[:40]!r}")
    return meta, rows, calibration


def load_table(path: str | Path) -> Table:
    """Read a table file; TableError when it is missing, empty, damaged, or holds a field outside
    what the format allows (every record is checked: metadata, rows, calibrations)."""
    path = Path(path)
    schema.check_input(path, "table", TableError, hint=" (build one with `latbench build-table`)")
    try:
        records = JsonLog(path, "table").read_numbered(from_start=True)
    except LogCorrupt as err:
        raise TableError(str(err)) from None
    if not records:
        raise TableError(f"{path}: empty: not a latbench table (build one with `latbench build-table`)")
    meta, rows, calibration = check_records(path, records)
    return Table(path, meta, rows, calibration)


class TableWriter:
    """Appends rows to a table, creating it with `meta` or checking that `meta` matches it."""

    def __init__(self, path: str | Path, meta: dict):
        self.path = Path(path)
        self.log = JsonLog(self.path, "table")
        check_output(self.path, "table file", append=True)
        with self.log.locked():
            numbered = self.log.read_numbered(from_start=True)
            if not numbered:
                self.meta = {"type": "meta", "format": FORMAT, "created_at": now(), "units": UNITS} | meta
                self.log.append([self.meta], locked=True)
                self.log.read_new()
                self.rows = {}
            else:  # checked as load_table checks it: never append to a table no reader would take
                self.meta, self.rows, _ = check_records(self.path, numbered)
                diff = identity_diff(self.meta, meta)
                if diff:
                    raise TableError(f"{self.path}: was measured with other settings ({'; '.join(diff)}); "
                                     "write to another --out or match them")

    def done(self, include_failed: bool = True) -> set[str]:
        """Keys with a recorded row (failed ones too unless `include_failed` is False)."""
        self._refresh()
        return {k for k, r in self.rows.items() if include_failed or r.get("status") == "ok"}

    def _refresh(self) -> None:
        for rec in self.log.read_new():
            if rec.get("type") == "row":
                self.rows[rec["key"]] = rec

    def add(self, row: dict) -> bool:
        """Append a row unless another writer already stored an ok row for its key."""
        with self.log.locked():
            self._refresh()
            if self.rows.get(row["key"], {}).get("status") == "ok":
                return False
            rec = {"type": "row", **row}
            try:  # a measurement no reader would take (a time below 1 ns) is stored as a failure
                check_row(rec, f"{self.path}: new row")
            except TableError as err:
                rec |= {"median_us": None, "p10_us": None, "p90_us": None, "cov": None, "n": 0,
                        "status": "failed", "reason": f"implausible measurement: {err}"[:300]}
            self.log.append([rec], locked=True)
            self.log.read_new()
            self.rows[row["key"]] = rec
        return True



def append_calibration(path: str | Path, calibration: dict) -> None:
    """Store a calibration with a table (the last one stored is the one used)."""
    load_table(path)  # refuse to append to a missing or damaged table
    record = {"type": "calibration", "fitted_at": now(), **calibration}
    check_calibration(record, f"{path}: new calibration", TableError)  # never store one no reader takes
    JsonLog(path, "table").append([record])


#: A table's default name (latbench.provenance.default_table_name): DEVICE-BACKEND-PRECISION-bBATCH
#: .jsonl, with an identity hash after the batch where the GPU session runner found a committed
#: table of other settings under the name (latbench.session.steps.open_table).
TABLE_NAME = re.compile(rf"(?P<device>[a-z0-9][a-z0-9-]*)-(?P<backend>{'|'.join(map(re.escape, BACKEND_NAMES))})"
                        rf"-(?P<precision>{'|'.join(PRECISIONS)})-b\d+(-[0-9a-f]{{8}})?\.jsonl")


def device_slug(table_name: str) -> str | None:
    """The device part of a table's default name ("h200" of h200-torch-fp16-b1.jsonl, "h100-80gb-hbm3"
    of h100-80gb-hbm3-torch-fp16-b1.jsonl): the folder of its results, bench/results/<device>/.
    None for a name of another form."""
    m = TABLE_NAME.fullmatch(Path(table_name).name)
    return m["device"] if m else None


def networks_path(table_path: str | Path) -> Path:
    """TABLE.networks.jsonl: the whole-network measurements kept beside a table."""
    return Path(str(table_path).removesuffix(".jsonl") + ".networks.jsonl")


def table_files(table_path: str | Path) -> list[Path]:
    """The files a table stands for: itself and its networks log (outputs must name neither)."""
    return [Path(table_path), networks_path(table_path)]


def merge_tables(a: str | Path, b: str | Path, out: str | Path) -> tuple[int, int]:
    """Write the union of two tables with equal identity to a new file `out`.

    A key in both keeps an ok row over a failed one, else the row of `a`. Returns (rows, keys in
    both). The file appears whole or not at all (latbench.files.atomic_path).
    """
    out = Path(out)
    check_output(out, "merged table")
    check_distinct({"the merged tables' files": table_files(a) + table_files(b), "--out": out})
    if out.exists():
        raise TableError(f"{out}: exists; merge into a new file")
    ta, tb = load_table(a), load_table(b)
    diff = identity_diff(ta.meta, tb.meta)
    if diff:
        raise TableError(f"{a} and {b} differ ({'; '.join(diff)}): refusing to merge")
    rows = dict(tb.rows)
    for key, row in ta.rows.items():
        if key not in rows or row.get("status") == "ok" or rows[key].get("status") != "ok":
            rows[key] = row
    both = len(set(ta.rows) & set(tb.rows))
    meta = ta.meta | {"merged_from": [str(a), str(b)], "created_at": now()}
    records = [meta] + list(rows.values()) + ([ta.calibration] if ta.calibration else [])
    write_bytes(out, b"".join(encode(r) for r in records))
    return len(rows), both
