"""The search's only state: an append-only results log (latbench.jsonlog) in the output folder.

Records, in order of events:
    {"type": "config", ...}                       the search settings (first record)
    {"type": "start", "trial", "pool_index", "x"} a trial handed to a worker
    {"type": "done", "trial", "pool_index", "x", "top1", ...}    a finished trial
    {"type": "failed", "trial", "pool_index", "x", "reason"}     a trial that raised

A trial counts against the budget once it is done or failed. A trial started but never finished
(the driver was killed) is started again on resume with the same id and network, so nothing is
lost and no finished trial is repeated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latbench import schema
from latbench.errors import LatbenchError, SearchError
from latbench.jsonlog import JsonLog, LogCorrupt
from latbench.limits import MAX_MS, MIN_MS
from latbench.space import MAX_SAMPLE, load_space
from latbench.files import check_output_dir
from latbench.table import now

#: Settings that must not change between a run and its --resume.
RESUME_IDENTITY = ("table", "space", "latency_min", "latency_max", "method", "seed", "budget", "train",
                   "pool_size", "pool")


@dataclass
class History:
    config: dict | None = None
    finished: dict = field(default_factory=dict)  # trial -> done/failed record
    in_flight: dict = field(default_factory=dict)  # trial -> start record without an end

    @property
    def done(self) -> list[dict]:
        return [r for r in self.finished.values() if r["type"] == "done"]

    def xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Encodings and top-1 (fraction) of successful trials."""
        d = self.done
        if not d:
            return np.zeros((0, 0), np.int64), np.zeros(0)
        return np.array([r["x"] for r in d]), np.array([r["top1"] / 100.0 for r in d])

    def used_indices(self) -> set[int]:
        return {r["pool_index"] for r in list(self.finished.values()) + list(self.in_flight.values())}

    def next_trial_id(self) -> int:
        ids = list(self.finished) + list(self.in_flight)
        return max(ids) + 1 if ids else 0

    def best(self) -> dict | None:
        return max(self.done, key=lambda r: r["top1"], default=None)


#: Bounds of a results record: trial ids, pool indices, encodings, latencies (ms) and top-1 (%).
MAX_TRIALS = 10_000_000


def check_record(rec: dict, where: str) -> dict:
    """A results record as the search and the charts use it, or SearchError naming the field."""
    kind = rec.get("type")
    if kind == "config":
        r = schema.fields(rec, where, {"table": str, "space": str, "latency_min": float, "latency_max": float},
                          {"method": (str, None), "budget": (int, None)}, error=SearchError, extra=True)
        if r["budget"] is not None:
            schema.number(r["budget"], f"{where}.budget", 1, MAX_TRIALS, integer=True, error=SearchError)
        if not 0 <= rec["latency_min"] < rec["latency_max"] <= MAX_MS:
            raise SearchError(f"{where}: latency group [{rec['latency_min']}, {rec['latency_max']}) ms is not "
                              f"within [0, {MAX_MS:g})")
        return rec
    if kind not in ("start", "done", "failed"):
        raise SearchError(f"{where}: unknown record type {str(kind)[:40]!r} (config, start, done, failed): "
                          "not a latbench results log")
    schema.fields(rec, where, {"trial": int, "pool_index": int, "x": list}, error=SearchError, extra=True)
    schema.number(rec["trial"], f"{where}.trial", 0, MAX_TRIALS, integer=True, error=SearchError)
    schema.number(rec["pool_index"], f"{where}.pool_index", 0, MAX_SAMPLE, integer=True, error=SearchError)
    if not 1 <= len(rec["x"]) <= 1024:
        raise SearchError(f"{where}.x: an encoded network of 1 to 1024 indices, got {len(rec['x'])}")
    for i, v in enumerate(rec["x"]):
        schema.number(v, f"{where}.x[{i}]", 0, 1 << 16, integer=True, error=SearchError)
    if kind == "done":
        schema.number(rec.get("top1"), f"{where}.top1", 0.0, 100.0, error=SearchError)
        schema.number(rec.get("predicted_ms"), f"{where}.predicted_ms", MIN_MS, MAX_MS, error=SearchError)
    elif kind == "failed" and not isinstance(rec.get("reason", ""), str):
        raise SearchError(f"{where}.reason: must be a string")
    return rec


def check_history(history: History, space, path, pool_size: int | None = None) -> History:
    """Every trial of a log is a network of `space` (and, given its size, a member of the pool)."""
    for rec in list(history.finished.values()) + list(history.in_flight.values()):
        where = f"{path}: trial {rec['trial']}"
        if pool_size is not None and rec["pool_index"] >= pool_size:
            raise SearchError(f"{where}: pool_index {rec['pool_index']} is outside the {pool_size}-network pool")
        try:
            space.check(rec["x"])
        except LatbenchError as err:
            raise SearchError(f"{where}: x: {err}") from None
    return history


def space_of(config: dict | None):
    """The searched space where this machine has it (its file, else a bundled space of its name)."""
    config = config or {}
    for source in (config.get("space_file"), config.get("space")):
        if isinstance(source, str) and source:
            try:
                return load_space(source)
            except LatbenchError:
                continue
    return None


class ResultsLog:
    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / "results.jsonl"
        self.log = JsonLog(self.path, "results log")

    def read(self) -> History:
        """The history in the log, every record checked (SearchError names the first bad one)."""
        h = History()
        try:
            records = self.log.read_numbered(from_start=True)
        except LogCorrupt as err:
            raise SearchError(str(err)) from None
        for i, (line, rec) in enumerate(records):
            where = f"{self.path}: line {line}"
            check_record(rec, where)
            kind = rec["type"]
            if (kind == "config") != (i == 0):
                raise SearchError(f"{where}: the config record must come first, and once: not a latbench "
                                  "results log")
            if kind == "config":
                h.config = rec
            elif kind == "start":
                h.in_flight[rec["trial"]] = rec
            else:
                h.in_flight.pop(rec["trial"], None)
                h.finished[rec["trial"]] = rec
        return h

    def open(self, config: dict, resume: bool) -> History:
        """Start a new log, or (resume) check that the settings match the existing one."""
        exists = self.log.exists()
        if exists and not resume:
            raise SearchError(f"{self.path}: a search already lives here; add --resume to continue it "
                              "or choose another --out")
        if not exists:
            if resume:
                raise SearchError(f"{self.path}: nothing to resume")
            check_output_dir(self.path.parent, "search output folder")
            self.log.append([{"type": "config", "created_at": now(), **config}])
            return self.read()
        history = self.read()
        old = history.config or {}
        diff = [k for k in RESUME_IDENTITY if old.get(k) != config.get(k)]
        if diff:
            raise SearchError(f"{self.path}: --resume with other settings ({', '.join(diff)}); "
                              "resume with the original options")
        return history

    def start(self, trial: int, pool_index: int, x, predicted_ms: float, proposal: dict | None = None) -> dict:
        """Record a trial handed to a worker; `proposal` says how it was chosen (method, region,
        a fallback to random and its reason)."""
        rec = {"type": "start", "trial": trial, "pool_index": int(pool_index), "x": [int(v) for v in x],
               "predicted_ms": float(predicted_ms), "proposal": proposal or {}, "started_at": now()}
        self.log.append([rec])
        return rec

    def finish(self, start: dict, result: dict) -> dict:
        kind = "done" if result.get("status", "ok") == "ok" else "failed"
        rec = {**start, "type": kind, **{k: v for k, v in result.items() if k != "status"},
               "finished_at": now()}
        self.log.append([rec])
        return rec
