"""One trial, run inside a worker process: (optionally) measure the network's missing blocks on
the table's device, then train the candidate briefly and score it.

The payload is plain data (picklable for any executor): the encoded network, the space file,
the training settings and, when the search runs on the table's device, the table to complete.
Any failure becomes {"status": "failed", "reason": one line}; the driver records it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from latbench.harness import HarnessSettings
from latbench.provenance import backend_for_table
from latbench.rows import failure_reason
from latbench.space import load_space
from latbench.table import load_table
from latbench.validate import fill_missing
from nas import lifeline
from nas.evaluate import TrainConfig, train_and_score


def run_trial(payload: dict) -> dict:
    started = time.perf_counter()
    lifeline.watch_driver(payload.get("driver"))  # a Ray worker on the driver's host dies with it
    try:
        space = load_space(payload["space"])
        staged = space.decode_staged(payload["x"])
        added = 0
        if payload.get("measure_table"):
            added = measure_missing(staged.expand(), payload["measure_table"])
        result = train_and_score(staged, TrainConfig(**payload["train"]))
        return {"status": "ok", **result, "blocks_measured": added, "worker_pid": os.getpid(),
                "trial_s": time.perf_counter() - started}
    except Exception as err:  # noqa: BLE001 - a trial's failure is data for the driver, not a crash
        return {"status": "failed", "reason": failure_reason(err), "worker_pid": os.getpid(),
                "trial_s": time.perf_counter() - started}


def measure_missing(arch, table_path: str) -> int:
    """Time the blocks of `arch` the table lacks and append them; returns how many."""
    table = load_table(table_path)
    be = backend_for_table(table)
    return fill_missing([arch], Path(table_path), be, HarnessSettings.from_dict(table.meta["harness"]), progress=False)
