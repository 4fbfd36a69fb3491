"""Filling a latency table: one row per key, crash-safe, resumable, with progress.

Keys are measured in a seeded random order so that slow drift (clocks, temperature, other load)
spreads over the whole table as noise instead of biasing one region (say, every stage-7 block).
A block that fails (out of memory, unsupported) becomes a failed row with its reason and the run
goes on; a re-run skips every key already recorded (`retry_failed` re-measures failed ones).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from latbench.backends.base import Backend
from latbench.blocks import BlockSpec
from latbench.harness import HarnessSettings
from latbench.progress import Progress
from latbench.provenance import table_meta
from latbench.rows import measure_row, monitor_for, row_facts
from latbench.table import TableWriter

ORDER_SEED = 1234
#: How many upcoming keys a backend may prepare on the host while the current one is timed.
PREFETCH = 2


@dataclass
class BuildSummary:
    """What a build did. `left` counts keys not attempted because the deadline came; `seconds`
    is the host time spent per measured or failed key (preparation and timing)."""

    total: int = 0
    skipped: int = 0
    measured: int = 0
    failed: int = 0
    left: int = 0
    failures: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def line(self) -> str:
        tail = f", {self.left} left for lack of time (re-run to resume)" if self.left else ""
        return (f"{self.total} keys: {self.measured} measured, {self.skipped} already in the table, "
                f"{self.failed} failed{tail}")

    @property
    def s_per_key(self) -> float | None:
        return float(sum(self.seconds) / len(self.seconds)) if self.seconds else None


def pending_specs(specs: list[BlockSpec], writer: TableWriter, retry_failed: bool,
                  shuffle: bool = True) -> list[BlockSpec]:
    """Specs not yet in the table, in the interleaved measurement order (or as given)."""
    done = writer.done(include_failed=not retry_failed)
    todo = [s for s in specs if s.key not in done]
    if shuffle:
        random.Random(ORDER_SEED).shuffle(todo)
    return todo


def out_of_time(deadline: float | None, next_s: float) -> bool:
    """Whether work expected to take `next_s` seconds would end after `deadline`
    (time.monotonic() seconds; None: no deadline)."""
    return deadline is not None and time.monotonic() + next_s > deadline


def build_table(specs: list[BlockSpec], out, backend: Backend, settings: HarnessSettings, *,
                retry_failed: bool = False, progress: bool = True, deadline: float | None = None,
                shuffle: bool = True) -> BuildSummary:
    """Measure every spec missing from the table at `out` and append its row.

    `deadline` (time.monotonic() seconds): no key is started that would, at the mean cost of
    the keys so far, end after it; the rest are counted in `summary.left`. `shuffle` False keeps
    the caller's order (validation fills network by network).
    """
    writer = TableWriter(out, table_meta(backend, settings))
    backend.attach_table(writer.path)
    todo = pending_specs(specs, writer, retry_failed, shuffle)
    summary = BuildSummary(total=len(specs), skipped=len(specs) - len(todo))
    monitor = monitor_for(backend.config)
    facts = row_facts(backend.config)
    with Progress(len(todo), "measuring", enabled=progress, status="failed 0") as bar:
        for i, spec in enumerate(todo):
            if out_of_time(deadline, summary.s_per_key or 0.0):
                summary.left = len(todo) - i
                break
            backend.prefetch(todo[i + 1:i + 1 + PREFETCH])
            bar.describe(spec.key)
            t0 = time.perf_counter()
            row = measure_row(backend, spec, settings, monitor) | facts
            summary.seconds.append(time.perf_counter() - t0)
            record(writer, row, summary)
            bar.advance(status=f"failed {summary.failed} | prepare {row.get('prepare_s', 0):.2f}s "
                               f"time {row.get('wall_s', 0):.2f}s")
    return summary


def record(writer: TableWriter, row: dict, summary: BuildSummary) -> None:
    if not writer.add(row):
        summary.skipped += 1  # another process stored it meanwhile
        return
    if row["status"] == "ok":
        summary.measured += 1
    else:
        summary.failed += 1
        summary.failures.append((row["key"], row["reason"]))
