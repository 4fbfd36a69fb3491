"""Filling a latency table: one row per key, crash-safe, resumable, with progress.

Keys are measured in a seeded random order so that slow drift (clocks, temperature, other load)
spreads over the whole table as noise instead of biasing one region (say, every stage-7 block).
A block that fails (out of memory, unsupported) becomes a failed row with its reason and the run
goes on; a re-run skips every key already recorded (`retry_failed` re-measures failed ones).
"""

from __future__ import annotations

import platform
import random
import time
import re
import traceback
from dataclasses import dataclass, field

from latbench import env
from latbench.backends.base import Backend, BackendConfig
from latbench.errors import LatbenchError
from latbench.harness import CpuMonitor, HarnessSettings, measure
from latbench.progress import Progress
from latbench.spec import BlockSpec
from latbench.table import TableWriter, now

ORDER_SEED = 1234
#: How many upcoming keys a backend may prepare on the host while the current one is timed.
PREFETCH = 2
#: A row timed while another process held the CPU is timed again after a pause, this often.
CONTENDED_RETRIES = 2
CONTENDED_PAUSE_S = 1.0


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


def device_info(config: BackendConfig, backend: Backend) -> dict:
    if config.device == "cuda":
        return env.cuda_device_info() | {"threads": None}
    return env.cpu_device_info(getattr(backend, "threads", None) or config.cpu_threads)


def table_meta(backend: Backend, settings: HarnessSettings) -> dict:
    """Provenance of a table measured by `backend` with `settings`."""
    cfg = backend.config
    return {
        "device": device_info(cfg, backend),
        "backend": backend.identity(),
        "precision": cfg.precision,
        "batch": cfg.batch,
        "protocol": cfg.protocol,
        "harness": settings.as_dict(),
        "latbench_version": env.library_versions()["latbench"],
        "libraries": env.library_versions(),
        "host": platform.node(),
    }


def default_table_name(meta: dict) -> str:
    """tables/<device>-<backend>-<precision>-b<batch>.jsonl, e.g. h200-torch-fp16-b1."""
    name = meta["device"]["name"] if meta["device"]["kind"] == "cuda" else "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower().replace("nvidia", "")).strip("-")
    return f"tables/{slug}-{meta['backend']['name']}-{meta['precision']}-b{meta['batch']}.jsonl"


def failure_reason(err: BaseException) -> str:
    """One line: exception type and the first line of its message."""
    msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if "out of memory" in msg.lower() or type(err).__name__ == "OutOfMemoryError":
        return f"out of memory: {msg[:200]}"
    return f"{type(err).__name__}: {msg[:300]}"


def measure_row(backend: Backend, spec: BlockSpec, settings: HarnessSettings, monitor=None) -> dict:
    """Measure one block; a failure becomes a failed row, never an exception.

    The row records `prepare_s` (export, engine build, graph capture: host seconds) apart from
    `wall_s` (the timing protocol itself).
    """
    try:
        t0 = time.perf_counter()
        with backend.prepare(spec) as exe:
            prepare_s = time.perf_counter() - t0
            m, extras = measure_quietly(exe, settings, monitor)
            info = dict(exe.info)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # noqa: BLE001 - any failure of one block is recorded, not fatal
        _free_gpu_memory()
        row = failed_row(spec, failure_reason(err))
        if not isinstance(err, (LatbenchError, MemoryError, RuntimeError, ValueError)):
            row["traceback"] = traceback.format_exc(limit=3)
        return row
    return {"key": spec.key, "median_us": m.median_us, "p10_us": m.p10_us, "p90_us": m.p90_us,
            "cov": m.cov, "n": m.n, "status": "ok", "reason": "", "measured_at": now(),
            "mean_us": m.mean_us, "unroll": m.unroll, "attempts": m.attempts,
            "wall_s": round(m.wall_s, 4), "prepare_s": round(prepare_s, 4), **extras, **info}


def measure_quietly(exe, settings: HarnessSettings, monitor=None):
    """`harness.measure`, timed again after a pause while another process held the CPU."""
    m, extras = measure(exe, settings, monitor)
    for _ in range(CONTENDED_RETRIES):
        if not extras.get("contended"):
            break
        time.sleep(CONTENDED_PAUSE_S)
        m, extras = measure(exe, settings, monitor)
    return m, extras


def failed_row(spec: BlockSpec, reason: str) -> dict:
    return {"key": spec.key, "median_us": None, "p10_us": None, "p90_us": None, "cov": None,
            "n": 0, "status": "failed", "reason": reason, "measured_at": now()}


def _free_gpu_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def monitor_for(config: BackendConfig):
    """Clock/throttle monitor on NVIDIA GPUs, contention monitor on CPUs."""
    if config.device != "cuda":
        return CpuMonitor(config.cpu_threads)
    from latbench.nvml import GpuMonitor

    mon = GpuMonitor()
    return mon if mon.available else None


def pending_specs(specs: list[BlockSpec], writer: TableWriter, retry_failed: bool,
                  shuffle: bool = True) -> list[BlockSpec]:
    """Specs not yet in the table, in the interleaved measurement order (or as given)."""
    done = writer.done(include_failed=not retry_failed)
    todo = [s for s in specs if s.key not in done]
    if shuffle:
        random.Random(ORDER_SEED).shuffle(todo)
    return todo


def row_facts(config: BackendConfig) -> dict:
    """Facts every row of a GPU table keeps even where the table's identity is looser: the exact
    driver (identity holds its major version only) and the host that measured the row."""
    if config.device != "cuda":
        return {}
    from latbench.nvml import driver_version

    return {"driver": driver_version() or "unknown", "host": platform.node()}


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


def backend_config(device: str, precision: str | None, batch: int, threads: int | None,
                   protocol: str | None, options: dict) -> BackendConfig:
    """A BackendConfig with the device-dependent defaults filled in."""
    return BackendConfig(device=device, precision=precision or ("fp16" if device == "cuda" else "fp32"),
                         batch=batch, threads=threads, protocol=protocol or default_protocol(device),
                         options=options)


def default_protocol(device: str) -> str:
    """The cache protocol chosen by validation against whole networks (README, measurement.md)."""
    return "weights-cold" if device == "cuda" else "warm"
