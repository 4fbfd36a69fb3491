"""The backend interface: prepare once (expensive), launch many times, release.

A backend turns a BlockSpec or an Arch into an `Executable` whose `launcher(unroll)` runs it
`unroll` times per call and whose `timer` is the clock that times such calls. Timing itself lives
in latbench.harness, never in a backend.

Cache protocols (`BackendConfig.protocol`) decide what the block sees in the caches while it is
timed, which is what makes a sum of blocks match a whole network (measurement.md):

* ``warm``: the same weights and input are replayed, so both stay in cache;
* ``weights-cold``: the launches cycle through distinct weight copies filling more than twice the
  last-level cache, with one input (as inside a network: the input was just written by the
  producer, the weights were not touched since the last inference);
* ``cold``: distinct weight and input copies.

The copies are capped (MAX_COPIES, and the memory cap): a block whose capped copies hold less
than COLD_FACTOR x the cache would replay some of them from cache. There a backend that can
(torch on CUDA) reads a scrub buffer of COLD_FACTOR x the cache once per cycle through the copies
and subtracts the scrub's own time, measured alone (`scrub_bytes`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from latbench.arch import Arch
from latbench.backends.heap import steady_heap
from latbench.blocks import BlockSpec
from latbench.errors import LatbenchError
from latbench.harness import Executable
from latbench.precision import PRECISIONS, elem_bytes

PROTOCOLS = ("warm", "weights-cold", "cold")
DEVICES = ("cpu", "cuda")
DEFAULT_PRECISION = {"cuda": "fp16", "cpu": "fp32"}
DEFAULT_PROTOCOL = {"cuda": "weights-cold", "cpu": "warm"}
#: Copies needed to flush: distinct bytes >= COLD_FACTOR x the last-level cache.
COLD_FACTOR = 2
MAX_COPIES = 512
DEFAULT_CPU_THREADS = 1


@dataclass(frozen=True)
class BackendConfig:
    """Everything that changes a measurement and so belongs to a table's identity."""

    device: str = "cpu"
    precision: str = "fp32"
    batch: int = 1
    #: CPU threads (None = DEFAULT_CPU_THREADS). One by default: multi-threaded OpenMP timings
    #: collapse (100x seen here) as soon as any other process competes for a core.
    threads: int | None = None
    protocol: str = "warm"
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.device not in ("cpu", "cuda"):
            raise LatbenchError(f"unknown device {self.device!r}; use cpu or cuda")
        if self.precision not in PRECISIONS:
            raise LatbenchError(f"unknown precision {self.precision!r}; use {', '.join(PRECISIONS)}")
        if self.protocol not in PROTOCOLS:
            raise LatbenchError(f"unknown cache protocol {self.protocol!r}; use {', '.join(PROTOCOLS)}")
        if not isinstance(self.batch, int) or self.batch < 1:
            raise LatbenchError(f"batch must be a positive integer, got {self.batch!r}")

    @classmethod
    def for_device(cls, device: str, precision: str | None = None, protocol: str | None = None,
                   **kw) -> "BackendConfig":
        """A config with the device's defaults: fp16 and `weights-cold` on CUDA, fp32 and `warm`
        on CPU (the protocols chosen by validation against whole networks: README)."""
        return cls(device=device, precision=precision or DEFAULT_PRECISION.get(device, "fp32"),
                   protocol=protocol or DEFAULT_PROTOCOL.get(device, "warm"), **kw)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def cpu_threads(self) -> int:
        return self.threads or DEFAULT_CPU_THREADS


class Backend(ABC):
    name: ClassVar[str]

    def __init__(self, config: BackendConfig):
        reason = self.availability(config.device)
        if reason:
            raise BackendUnavailableError(self.name, config.device, reason)
        self.config = config
        # CPU timings depend on the C allocator's state unless it is steadied (see heap.py).
        self.heap = steady_heap() if config.device == "cpu" else None

    @classmethod
    @abstractmethod
    def availability(cls, device: str) -> str | None:
        """None when this backend can run on `device` here, else the reason it cannot."""

    @abstractmethod
    def version(self) -> str:
        """Version string of the runtime that executes the blocks."""

    @abstractmethod
    def prepare(self, target: BlockSpec | Arch) -> Executable:
        """Build what runs `target` at the configured batch and precision."""

    #: The table file this backend measures for (set by `attach_table`).
    attached_table = None

    def attach_table(self, path) -> None:
        """Called with the table file before measuring for it: a backend may keep caches beside
        it (TensorRT keeps its timing cache there); overrides call this first."""
        self.attached_table = path

    def prefetch(self, targets: list) -> None:
        """Hint: these targets come next. A backend may start host-side preparation (export,
        parsing) in the background, never GPU work that would disturb the block being timed.
        Default: nothing."""

    def identity(self) -> dict:
        """Backend part of a table's metadata."""
        out = {"name": self.name, "version": self.version(), "options": dict(self.config.options)}
        return out | ({"heap": self.heap} if self.heap else {})

    def close(self) -> None:
        """Release backend-wide resources (caches, sessions)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BackendUnavailableError(LatbenchError):
    def __init__(self, name: str, device: str, reason: str):
        super().__init__(f"backend {name} cannot run on {device} here: {reason}")


def copy_bytes(protocol: str, weight_bytes: int, input_bytes: int) -> int:
    """Bytes of one copy a cold protocol cycles through: the weights, and the input for `cold`."""
    return weight_bytes + (input_bytes if protocol == "cold" else 0)


def copies_needed(protocol: str, weight_bytes: int, input_bytes: int, cache_bytes: int,
                  memory_cap_bytes: int) -> tuple[int, int]:
    """(weight copies, input copies) a protocol needs to keep caches cold, within a memory cap."""
    if protocol == "warm" or cache_bytes <= 0:
        return 1, 1
    per_copy = copy_bytes(protocol, weight_bytes, input_bytes)
    k = math.ceil(COLD_FACTOR * cache_bytes / max(per_copy, 1))
    k = max(1, min(k, MAX_COPIES, memory_cap_bytes // max(per_copy, 1)))
    return k, (k if protocol == "cold" else 1)


def scrub_bytes(protocol: str, distinct_bytes: int, cache_bytes: int) -> int:
    """Bytes to read once per cycle through the copies so that none of them is still cached when
    it comes round again: COLD_FACTOR x the cache when the `distinct_bytes` the copies hold are
    fewer (their count was capped), else 0 (and 0 for `warm`)."""
    if protocol == "warm" or cache_bytes <= 0 or distinct_bytes >= COLD_FACTOR * cache_bytes:
        return 0
    return COLD_FACTOR * cache_bytes


def target_bytes(target: BlockSpec | Arch, precision: str, batch: int) -> tuple[int, int]:
    """(weight bytes, input bytes) of a block or network at a precision and batch."""
    blocks = target.blocks if isinstance(target, Arch) else (target,)
    eb = elem_bytes(precision)
    first = blocks[0]
    return (sum(b.folded_params for b in blocks) * eb,
            batch * first.in_channels * first.height * first.width * eb)
