"""Table rows from measurements: one block prepared, timed and described, never an exception.

A row is the record a table stores per key: `key, median_us, p10_us, p90_us, cov, n, status,
reason, measured_at` plus unroll, attempts, preparation and timing seconds, what the monitor saw
(GPU clock, temperature, throttling, NVML errors; CPU utilisation and contention) and the
backend's details (copies, engine layers). A block that fails becomes a failed row with its reason.
"""

from __future__ import annotations

import platform
import time
import traceback

from latbench.backends.base import Backend, BackendConfig
from latbench.blocks import BlockSpec
from latbench.errors import LatbenchError
from latbench.harness import CpuMonitor, HarnessSettings, measure
from latbench.nvml import GpuMonitor, driver_version
from latbench.table import now

#: A row timed while another process held the CPU is timed again after a pause, this often.
CONTENDED_RETRIES = 2
CONTENDED_PAUSE_S = 1.0


def failure_reason(err: BaseException) -> str:
    """One line: exception type and the first line of its message."""
    msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if "out of memory" in msg.lower() or type(err).__name__ == "OutOfMemoryError":
        return f"out of memory: {msg[:200]}"
    return f"{type(err).__name__}: {msg[:300]}"


def monitor_for(config: BackendConfig):
    """Clock/throttle monitor on NVIDIA GPUs, contention monitor on CPUs."""
    if config.device != "cuda":
        return CpuMonitor(config.cpu_threads)
    mon = GpuMonitor()
    return mon if mon.available else None


def row_facts(config: BackendConfig) -> dict:
    """Facts every row of a GPU table keeps even where the table's identity is looser: the exact
    driver (identity holds its major version only) and the host that measured the row."""
    if config.device != "cuda":
        return {}
    return {"driver": driver_version() or "unknown", "host": platform.node()}


def measure_quietly(exe, settings: HarnessSettings, monitor=None):
    """`harness.measure`, timed again after a pause while another process held the CPU."""
    m, extras = measure(exe, settings, monitor)
    for _ in range(CONTENDED_RETRIES):
        if not extras.get("contended"):
            break
        time.sleep(CONTENDED_PAUSE_S)
        m, extras = measure(exe, settings, monitor)
    return m, extras


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
        free_gpu_memory()
        row = failed_row(spec, failure_reason(err))
        if not isinstance(err, (LatbenchError, MemoryError, RuntimeError, ValueError)):
            row["traceback"] = traceback.format_exc(limit=3)
        return row
    return {"key": spec.key, "median_us": m.median_us, "p10_us": m.p10_us, "p90_us": m.p90_us,
            "cov": m.cov, "n": m.n, "status": "ok", "reason": "", "measured_at": now(),
            "mean_us": m.mean_us, "unroll": m.unroll, "attempts": m.attempts,
            "wall_s": round(m.wall_s, 4), "prepare_s": round(prepare_s, 4), **extras, **info}


def failed_row(spec: BlockSpec, reason: str) -> dict:
    return {"key": spec.key, "median_us": None, "p10_us": None, "p90_us": None, "cov": None,
            "n": 0, "status": "failed", "reason": reason, "measured_at": now()}


def free_gpu_memory() -> None:
    """Return cached CUDA memory after a failure (an out-of-memory block must not doom the next)."""
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
