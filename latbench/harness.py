"""The timing harness shared by every backend.

Backends only know how to launch a prepared block `unroll` times in one call (on a GPU: one CUDA
graph that replays the block `unroll` times) and which clock times such a call (CUDA events on the
GPU, the host's monotonic clock on the CPU). The harness owns the protocol:

1. warm up for `warmup_s` of measured time;
2. probe the time of one execution and choose `unroll` so one sample lasts at least `sample_s`
   (on a GPU this removes launch overhead: the graph replays back to back);
3. take at least `min_samples` samples and at least `min_time_s` of sampled time;
4. report median, p10, p90, mean and the coefficient of variation (CoV) of the per-execution
   times; when CoV exceeds `max_cov`, take a fresh set (up to `max_attempts`) and keep the
   quietest;
5. on NVIDIA GPUs, read SM clock, temperature and throttle reasons before and after the samples
   and flag the row when the GPU was throttled.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Callable, Protocol

import numpy as np

from latbench import schema
from latbench.errors import LatbenchError


@dataclass(frozen=True)
class HarnessSettings:
    """Timing protocol parameters; times in seconds, `max_cov` a fraction (0.02 = 2 %)."""

    warmup_s: float
    sample_s: float
    min_samples: int
    min_time_s: float
    max_cov: float
    max_attempts: int = 3
    probe_unroll: int = 1
    max_unroll: int = 100_000
    max_samples: int = 1000

    @classmethod
    def for_device(cls, device: str, quick: bool = False) -> "HarnessSettings":
        """Defaults per device. `quick` trades precision for speed (tests, smoke runs)."""
        if device == "cuda":
            # One graph replay of >= 1 ms amortises the replay launch (a few us) below 0.5 %.
            return cls(warmup_s=0.02, sample_s=0.001 if quick else 0.002, min_samples=5 if quick else 7,
                       min_time_s=0.005 if quick else 0.014, max_cov=0.02, probe_unroll=16)
        # CPU: many short samples; their median shrugs off the scheduler's hiccups (measured on
        # a 2-core VM: 21 x 5 ms samples gave half the repeat-to-repeat CoV of 15 x 20 ms, in
        # 0.25 s instead of 0.65 s a key).
        return cls(warmup_s=0.02 if quick else 0.05, sample_s=0.002 if quick else 0.005,
                   min_samples=5 if quick else 21, min_time_s=0.02 if quick else 0.15,
                   max_cov=0.05, max_attempts=2 if quick else 3)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj, where: str = "harness", error=LatbenchError) -> "HarnessSettings":
        """Settings stored in a table, each checked against RANGES (`error` names the field and
        its allowed range)."""
        names = [f.name for f in fields(cls)]
        required = {n: int if isinstance(RANGES[n][0], int) else float for n in names[:5]}
        optional = {n: (int, getattr(_DEFAULTS, n)) for n in names[5:]}
        values = schema.fields(obj, where, required, optional, error=error)
        for name, (lo, hi, lo_open) in RANGES.items():
            schema.number(values[name], f"{where}.{name}", lo, hi, integer=isinstance(lo, int), lo_open=lo_open,
                          error=error)
        if values["min_samples"] > values["max_samples"]:
            raise error(f"{where}: min_samples {values['min_samples']} exceeds max_samples {values['max_samples']}")
        return cls(**values)


#: Allowed ranges of the stored harness settings: (low, high, low excluded).
RANGES = {
    "warmup_s": (0.0, 3600.0, False), "sample_s": (0.0, 60.0, True), "min_samples": (1, 1_000_000, False),
    "min_time_s": (0.0, 3600.0, False), "max_cov": (0.0, 100.0, True), "max_attempts": (1, 1000, False),
    "probe_unroll": (1, 1 << 30, False), "max_unroll": (1, 1 << 40, False), "max_samples": (1, 1 << 30, False),
}
_DEFAULTS = HarnessSettings(0.0, 1.0, 1, 0.0, 1.0)


@dataclass(frozen=True)
class Measurement:
    """Per-execution statistics in microseconds; `cov` is std/mean of the samples.

    `samples_us` keeps every sample (microseconds per execution, in the order taken), as
    torch.utils.benchmark's Measurement does, so that a chart or another statistic can be
    computed later without measuring again; table rows store the statistics only.
    """

    median_us: float
    p10_us: float
    p90_us: float
    mean_us: float
    cov: float
    n: int
    unroll: int
    attempts: int
    wall_s: float
    samples_us: tuple[float, ...] = field(default=(), repr=False)

    @classmethod
    def from_samples(cls, per_exec_s, unroll: int, attempts: int, wall_s: float) -> "Measurement":
        us = np.asarray(per_exec_s, dtype=np.float64) * 1e6
        mean = float(us.mean())
        cov = float(us.std(ddof=1) / mean) if len(us) > 1 and mean > 0 else 0.0
        p10, med, p90 = np.percentile(us, [10, 50, 90])
        return cls(float(med), float(p10), float(p90), mean, cov, len(us), unroll, attempts, wall_s,
                   tuple(us.tolist()))

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100) of the samples, in microseconds."""
        return float(np.percentile(self.samples_us, q))

    def stats(self) -> dict:
        """The statistics a table row stores (no samples)."""
        return {k: v for k, v in asdict(self).items() if k != "samples_us"}


class Timer(Protocol):
    def time(self, fn: Callable[[], None], n: int) -> list[float]:
        """Seconds taken by each of `n` consecutive calls of `fn`."""


class HostTimer:
    """The host's monotonic clock; for work that completes before the call returns (CPU)."""

    def time(self, fn: Callable[[], None], n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            fn()
            out.append((time.perf_counter_ns() - t0) * 1e-9)
        return out


class CudaEventTimer:
    """CUDA events around each call on the current stream; one synchronisation at the end."""

    def time(self, fn: Callable[[], None], n: int) -> list[float]:
        import torch

        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(n)]
        for start, end in events:
            start.record()
            fn()
            end.record()
        events[-1][1].synchronize()
        return [start.elapsed_time(end) * 1e-3 for start, end in events]


class CpuMonitor:
    """The CPU analogue of the GPU monitor: how much of the wall time this process really ran.

    On a shared CPU another process can take the cores while a block is timed; its samples then
    include waiting. The share cpu_time / (wall_time x threads) falls well below 1 when that
    happens: rows with `cpu_util` under `min_util` are flagged `contended`.
    """

    def __init__(self, threads: int, min_util: float = 0.8):
        self.threads, self.min_util = max(1, threads), min_util

    def snapshot(self) -> dict:
        return {"wall": time.perf_counter(), "cpu": time.process_time()}

    def summarize(self, before: dict, after: dict) -> dict:
        wall = after["wall"] - before["wall"]
        util = (after["cpu"] - before["cpu"]) / max(wall * self.threads, 1e-9)
        return {"cpu_util": round(util, 3), "contended": bool(util < self.min_util)}


class Executable(ABC):
    """A prepared block or network, as a backend's `prepare` returns it: `launcher(unroll)` runs
    it `unroll` times per call, `timer` is the clock for such calls. Use as a context manager, or
    call `release`."""

    timer: Timer
    #: Extra row columns the backend wants recorded (engine layers, copies, ...).
    info: dict
    #: The harness asks only for multiples of this unroll: a CUDA graph must run whole cycles
    #: through the cold copies.
    min_unroll: int = 1

    @abstractmethod
    def launcher(self, unroll: int) -> Callable[[], None]:
        """A callable that runs the prepared target `unroll` times."""

    def fixed_s(self, unroll: int) -> float:
        """Seconds of each `launcher(unroll)` call that are not the target's own (a cache scrub
        between cycles through cold copies); the harness subtracts them from every sample."""
        return 0.0

    def release(self) -> None:
        """Free what `prepare` allocated."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def whole_cycles(unroll: int, cycle: int) -> int:
    """`unroll` rounded up to a multiple of `cycle` (at least one cycle)."""
    return max(1, -(-unroll // cycle)) * cycle


def measure(exe: Executable, settings: HarnessSettings, monitor=None) -> tuple[Measurement, dict]:
    """Time `exe` by the protocol of the module docstring.

    Returns the Measurement and row extras (GPU clock, temperature, throttle flags when a
    monitor is given; the chosen unroll is in the Measurement).
    """
    t_start = time.perf_counter()
    timer = exe.timer
    # A launcher that cycles through K cold copies must run whole cycles: a partial one would
    # time only some copies, and replays would run one copy twice in a row (warming it).
    cycle = max(1, getattr(exe, "min_unroll", 1))
    probe_unroll = whole_cycles(settings.probe_unroll, cycle)
    probe = exe.launcher(probe_unroll)
    spent, deadline = 0.0, time.perf_counter() + 20 * settings.warmup_s + 1.0
    while spent < settings.warmup_s and time.perf_counter() < deadline:
        spent += timer.time(probe, 1)[0]
    per_exec = float(np.median(timer.time(probe, 3))) / probe_unroll
    unroll = int(min(settings.max_unroll, max(1, math.ceil(settings.sample_s / max(per_exec, 1e-9)))))
    unroll = whole_cycles(unroll, cycle)
    # A probe that already lasts a whole sample is the sample: no second CUDA graph to capture
    # (with hundreds of cold copies the probe cycle alone is several milliseconds long).
    unroll = probe_unroll if unroll <= probe_unroll else unroll
    run = probe if unroll == probe_unroll else exe.launcher(unroll)
    sample_s = timer.time(run, 1)[0]  # first call after (re)building: not a sample
    n = int(min(settings.max_samples,
                max(settings.min_samples, math.ceil(settings.min_time_s / max(sample_s, 1e-9)))))
    before = monitor.snapshot() if monitor else {}
    best = None
    for attempt in range(1, settings.max_attempts + 1):
        fixed = exe.fixed_s(unroll) if hasattr(exe, "fixed_s") else 0.0
        samples = [(s - fixed) / unroll for s in timer.time(run, n)]
        m = Measurement.from_samples(samples, unroll, attempt, 0.0)
        if best is None or m.cov < best.cov:
            best = m
        if m.cov <= settings.max_cov:
            break
    after = monitor.snapshot() if monitor else {}
    extras = monitor.summarize(before, after) if monitor else {}
    wall = time.perf_counter() - t_start
    best = replace(best, attempts=attempt, wall_s=wall)
    return best, extras
