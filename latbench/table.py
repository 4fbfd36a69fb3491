"""Latency tables: provenance metadata plus one row per block key, stored as an append-only log.

File format (JSON lines, see latbench.jsonlog): the first record is the metadata
(``{"type": "meta", ...}``), then ``{"type": "row", ...}`` records, and ``{"type":
"calibration", ...}`` records written by `latbench validate`. The last row of a key and the last
calibration win. Times are microseconds per forward pass of one batch.

This module imports neither torch nor TensorRT: tables are read anywhere.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from latbench.errors import TableError
from latbench.jsonlog import JsonLog, LogCorrupt

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


def identity(meta: dict) -> dict:
    out = {f: _get(meta, f) for f in IDENTITY}
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


def load_table(path: str | Path) -> Table:
    """Read a table file; TableError when it is missing, empty or damaged."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such table file (build one with `latbench build-table`)")
    try:
        records = JsonLog(path).read_all()
    except LogCorrupt as err:
        raise TableError(str(err)) from None
    if not records or records[0].get("type") != "meta" or records[0].get("format") != FORMAT:
        raise TableError(f"{path}: not a latbench table (the first record must be its {FORMAT} metadata)")
    meta, rows, calibration = records[0], {}, None
    for rec in records[1:]:
        kind = rec.get("type")
        if kind == "row":
            if "key" not in rec or "status" not in rec:
                raise TableError(f"{path}: a row lacks its key or status: the file is damaged")
            rows[rec["key"]] = rec
        elif kind == "calibration":
            calibration = rec
        elif kind != "meta":
            raise TableError(f"{path}: unknown record type {kind!r}")
    return Table(path, meta, rows, calibration)


class TableWriter:
    """Appends rows to a table, creating it with `meta` or checking that `meta` matches it."""

    def __init__(self, path: str | Path, meta: dict):
        self.path = Path(path)
        self.log = JsonLog(self.path)
        self._check_writable()
        with self.log.lock:
            records = self.log.read_all()
            if not records:
                self.meta = {"type": "meta", "format": FORMAT, "created_at": now(), "units": UNITS} | meta
                self.log.append([self.meta], locked=True)
                self.log.read_new()
                records = []
            else:
                self.meta = records[0]
                if self.meta.get("format") != FORMAT:
                    raise TableError(f"{self.path}: not a latbench table")
                diff = identity_diff(self.meta, meta)
                if diff:
                    raise TableError(f"{self.path}: was measured with other settings ({'; '.join(diff)}); "
                                     "write to another --out or match them")
        self.rows = {r["key"]: r for r in records if r.get("type") == "row"}

    def _check_writable(self) -> None:
        parent = self.path.parent
        if self.path.is_dir():
            raise TableError(f"{self.path}: is a folder; --out needs a file path")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TableError(f"{self.path}: cannot create folder {parent}: {err.strerror}") from None
        probe = self.path if self.path.exists() else parent
        if not os.access(probe, os.W_OK):
            raise TableError(f"{self.path}: not writable (check permissions or choose another --out)")

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
        with self.log.lock:
            self._refresh()
            if self.rows.get(row["key"], {}).get("status") == "ok":
                return False
            rec = {"type": "row", **row}
            self.log.append([rec], locked=True)
            self.log.read_new()
            self.rows[row["key"]] = rec
        return True



def append_calibration(path: str | Path, calibration: dict) -> None:
    """Store a calibration with a table (the last one stored is the one used)."""
    load_table(path)  # refuse to append to a missing or damaged table
    JsonLog(path).append([{"type": "calibration", "fitted_at": now(), **calibration}])


def merge_tables(a: str | Path, b: str | Path, out: str | Path) -> tuple[int, int]:
    """Write the union of two tables with equal identity to a new file `out`.

    A key in both keeps an ok row over a failed one, else the row of `a`. Returns (rows, keys in
    both). The file appears whole or not at all (written aside, then renamed).
    """
    ta, tb = load_table(a), load_table(b)
    diff = identity_diff(ta.meta, tb.meta)
    if diff:
        raise TableError(f"{a} and {b} differ ({'; '.join(diff)}): refusing to merge")
    out = Path(out)
    if out.exists():
        raise TableError(f"{out}: exists; merge into a new file")
    rows = dict(tb.rows)
    for key, row in ta.rows.items():
        if key not in rows or row.get("status") == "ok" or rows[key].get("status") != "ok":
            rows[key] = row
    both = len(set(ta.rows) & set(tb.rows))
    meta = ta.meta | {"merged_from": [str(a), str(b)], "created_at": now()}
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    log = JsonLog(tmp)
    log.append([meta] + list(rows.values()) + ([ta.calibration] if ta.calibration else []))
    os.replace(tmp, out)
    Path(str(tmp) + ".lock").unlink(missing_ok=True)
    return len(rows), both
