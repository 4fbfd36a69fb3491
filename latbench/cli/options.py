"""Options shared by the commands, each defined once (Polygraphy's argument groups are the model).

An option name means the same thing on every command that has it:

    --table PATH     a latency table (JSON lines)           --space NAME  which search space
    --n N            how many Sobol networks of --space     --seed S      their Sobol seed
    --archs A        networks by file, bundled name or vector (repeatable)
    --json           one JSON object on stdout instead of tables
    --missing M      keys a table lacks: error | estimate | measure (| skip, charts only)
    --backend/--device/--precision/--batch/--protocol/--threads/--gpu: what measures (resolved
                     once, before the options of the resolved backend are applied)

Choices are enums checked by the parser, and numbers are range-checked by it: a bad value ends
with exit code 2 and the allowed values. Old spellings stay as hidden aliases for one release.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from latbench.errors import LatbenchError
from latbench.files import clean_json


class Backend(str, Enum):
    auto = "auto"
    tensorrt = "tensorrt"
    torch = "torch"
    onnxruntime = "onnxruntime"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class Protocol(str, Enum):
    warm = "warm"
    weights_cold = "weights-cold"
    cold = "cold"


class Missing(str, Enum):
    """Keys a table lacks: refuse, estimate by regression, or measure on the table's device."""

    error = "error"
    estimate = "estimate"
    measure = "measure"


class ChartMissing(str, Enum):
    """Keys a chart's table lacks: leave them out, or measure them on the table's device."""

    skip = "skip"
    measure = "measure"


class SearchMissing(str, Enum):
    """Blocks of trained networks the table lacks: measure them (on the table's device) or estimate."""

    measure = "measure"
    estimate = "estimate"


def path_value(text) -> Path:
    """A path option's value: an empty one is refused by the parser (it would mean the current
    folder, which no user means by ""). Defaults arrive as Paths already."""
    if isinstance(text, Path):
        return text
    if not text.strip():
        raise typer.BadParameter("empty path; give a file or folder name")
    return Path(text)


def text_value(text) -> str:
    """A name option's value (--gpu, --ray): an empty one is refused by the parser rather than
    read as "not given"."""
    if not str(text).strip():
        raise typer.BadParameter("empty value; give one or leave the option out")
    return str(text)


def number_value(low: float, high: float):
    """A float option's parser: a finite number in [low, high]. Typer's own range check lets
    "nan" through every comparison and then names the wrong bound ("should be <= high"), so float
    options are parsed here. Defaults arrive as numbers already."""

    bounds = f"{low:.10g} to {high:.10g}"

    def parse(text) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{text!r} is not a number; give one from {bounds}") from None
        if not math.isfinite(value):
            raise typer.BadParameter(f"{text} is not a finite number; give one from {bounds}")
        if not low <= value <= high:
            raise typer.BadParameter(f"{value:.10g} is out of range; give {bounds}")
        return value

    return parse


#: Largest count of networks any command draws (a Sobol pool of 2^24 networks is 5 GB).
MAX_NETWORKS = 1 << 24
SEED_MAX = 2**32 - 1

TableOpt = Annotated[Path, typer.Option("--table", help="Latency table (a tables/*.jsonl file).", parser=path_value)]
MaybeTableOpt = Annotated[Optional[Path], typer.Option(
    "--table", help="Latency table (default: the one table in tables/ that fits --gpu and --precision).",
    parser=path_value)]
SpaceOpt = Annotated[str, typer.Option("--space", help="Search space: a bundled name (gpunet, tiny) or a space file.")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="Sobol seed.")]
ArchsOpt = Annotated[List[str], typer.Option(
    "--archs", help="A network: file, bundled name (gpunet-1) or encoded vector (repeatable).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
MissingOpt = Annotated[Missing, typer.Option("--missing", help="Keys the table lacks: error, estimate or measure.")]

BackendOpt = Annotated[Backend, typer.Option(
    "--backend", help="auto: TensorRT with a GPU where it imports, else torch on CUDA, else torch on CPU.")]
DeviceOpt = Annotated[Optional[Device], typer.Option("--device", help="cuda or cpu (default: cuda when visible).")]
PrecisionOpt = Annotated[Optional[Precision], typer.Option(
    "--precision", help="Weights and activations (default fp16 on GPU, fp32 on CPU).")]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, max=4096, help="Batch size.")]
ProtocolOpt = Annotated[Optional[Protocol], typer.Option(
    "--protocol", help="Cache state of timed blocks (default weights-cold on GPU, warm on CPU).")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", min=1, max=1024, help="CPU threads (default 1: multi-threaded timings collapse when "
                                        "another process competes for a core).")]
GpuOpt = Annotated[Optional[str], typer.Option("--gpu", help="Target GPU (a100, h100, ...); must be the one that measures.",
                                                parser=text_value)]
OptLevelOpt = Annotated[int, typer.Option("--opt-level", min=0, max=5, help="TensorRT builder optimisation level.")]
WorkspaceOpt = Annotated[Optional[int], typer.Option(
    "--workspace-mb", min=1, max=1 << 20, help="TensorRT workspace limit in MiB.")]
CudnnOpt = Annotated[bool, typer.Option(
    "--cudnn-benchmark/--no-cudnn-benchmark", help="torch on CUDA: let cuDNN autotune kernels per process "
                                                   "(default: its shape heuristics; recorded in the table).")]


@dataclass(frozen=True)
class MeasureOptions:
    """The measuring options of a command, as given (the group of options above)."""

    backend: Backend = Backend.auto
    device: Device | None = None
    precision: Precision | None = None
    batch: int = 1
    protocol: Protocol | None = None
    threads: int | None = None
    gpu: str | None = None
    opt_level: int = 3
    workspace_mb: int | None = None
    cudnn_benchmark: bool = False

    def config(self, name: str, device: str):
        """The BackendConfig for backend `name` on `device`, with that backend's own options."""
        from latbench.backends.base import BackendConfig

        options = backend_options(name, device, opt_level=self.opt_level, workspace_mb=self.workspace_mb,
                                  cudnn_benchmark=self.cudnn_benchmark)
        return BackendConfig.for_device(device, self.precision.value if self.precision else None,
                                        self.protocol.value if self.protocol else None, batch=self.batch,
                                        threads=self.threads, options=options)


@dataclass(frozen=True)
class Measurer:
    """What measures, resolved once: backend name, its config, and why it was chosen."""

    name: str
    config: object  # latbench.backends.base.BackendConfig
    why: str


def backend_options(name: str, device: str, *, opt_level: int = 3, workspace_mb: int | None = None,
                    cudnn_benchmark: bool = False) -> dict:
    """The options of the backend that will actually run (after `auto` was resolved)."""
    if name == "tensorrt":
        return {"opt_level": opt_level, "workspace_mb": workspace_mb}
    if name == "torch" and device == "cuda":
        return {"cudnn_benchmark": cudnn_benchmark}
    return {}


def resolve_measurer(opts: MeasureOptions) -> Measurer:
    """Resolve backend and device on this machine, check --gpu against the visible GPU, then apply
    the resolved backend's own options."""
    from latbench import backends, env

    if opts.gpu and opts.device == Device.cpu:
        raise LatbenchError("--gpu names a GPU target; a CPU table (--device cpu) takes no --gpu")
    name, dev, why = backends.resolve(opts.backend.value, opts.device.value if opts.device else None)
    if opts.gpu:
        visible = (env.cuda_device_info() or {}).get("name", "no GPU")
        if not env.gpu_matches(opts.gpu, visible):
            raise LatbenchError(f"--gpu {opts.gpu} does not match the visible device ({visible}); "
                                "run on that GPU or drop --gpu")
    return Measurer(name, opts.config(name, dev), why)


def emit_json(obj) -> None:
    """Print one JSON object (strict JSON: no NaN) on stdout."""
    sys.stdout.write(json.dumps(clean_json(obj), indent=2, allow_nan=False, default=str) + "\n")
