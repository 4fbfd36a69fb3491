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

from latbench.errors import SearchError
from latbench.jsonlog import JsonLog
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


class ResultsLog:
    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / "results.jsonl"
        self.log = JsonLog(self.path)

    def read(self) -> History:
        h = History()
        for rec in self.log.read_all():
            kind = rec.get("type")
            if kind == "config":
                h.config = rec
            elif kind == "start":
                h.in_flight[rec["trial"]] = rec
            elif kind in ("done", "failed"):
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
            self.path.parent.mkdir(parents=True, exist_ok=True)
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
