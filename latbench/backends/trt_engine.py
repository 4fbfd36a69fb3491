"""Building TensorRT engines from ONNX, for TensorRT 10.x and 11.x.

Every function here receives the `tensorrt` module as `trt` (the backend imports it lazily), so
this module imports without TensorRT and its plumbing is tested with a stand-in module. Each call
follows the Python bindings of NVIDIA/TensorRT (python/src/infer/pyCore.cpp and
python/src/parsers/pyOnnx.cpp on release/10.0, release/10.16 and main = 11.1):

* ``trt.Builder(logger).create_network(flags)``: flags is a bit mask, ``1 << int(flag)``. The
  STRONGLY_TYPED flag makes a 10.x network take its precisions from the ONNX types; 11.x networks
  are always strongly typed and keep the flag only as a deprecated no-op, so it is set when the
  enum still has it. No BuilderFlag precision flag is used anywhere: 11.0 removed them.
* ``trt.OnnxParser(network, logger).parse(bytes)`` returns False on failure;
  ``parser.get_error(i).desc()`` for ``i < parser.num_errors`` says why.
* ``config.create_timing_cache(bytes)`` (``b""`` = empty) makes a cache that "can be shared by
  multiple builder instances"; ``config.set_timing_cache(cache, ignore_mismatch=False)`` returns
  False for a cache made on another device; ``cache.serialize()`` gives its bytes.
* ``builder.build_serialized_network(network, config)`` returns None on failure.
* ``config.clear_flag(trt.BuilderFlag.TF32)``: TF32 is enabled by default (NvInfer.h).
* ``engine.get_tensor_format(name)``: I/O must be ``trt.TensorFormat.LINEAR`` for plain buffers.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from latbench.backends.trt_inspect import EngineLayers, parse_engine_info
from latbench.errors import LatbenchError
from latbench.files import write_bytes

log = logging.getLogger("latbench.tensorrt")
#: Errors kept from TensorRT's log for the message of a failed build.
KEEP_ERRORS = 5


def network_flags(trt) -> int:
    """create_network flags: STRONGLY_TYPED where the enum still has it (10.x; a no-op in 11.x)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def capturing_logger(trt):
    """A trt.ILogger that keeps TensorRT's errors (for exception messages) and forwards errors
    and warnings to Python logging ("latbench.tensorrt"); info and verbose are dropped."""
    error, warning = int(trt.ILogger.Severity.ERROR), int(trt.ILogger.Severity.WARNING)

    class CapturingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            level = int(severity)
            if level <= error:  # INTERNAL_ERROR (0) and ERROR (1)
                self.errors = [*self.errors, msg][-KEEP_ERRORS:]
                log.error("TensorRT: %s", msg)
            elif level == warning:
                log.warning("TensorRT: %s", msg)

    return CapturingLogger()


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` aside, then rename over `path`: a reader never sees half a file, and a full
    disk leaves the old cache and no temporary file (latbench.files)."""
    write_bytes(path, data)


class EngineBuilder:
    """Builds serialized engines from ONNX bytes with one logger, builder and timing cache.

    opt_level: builder optimisation level 0-5 (TensorRT's default is 3). workspace_mb: workspace
    memory pool limit in MiB, None for TensorRT's default (the device's memory).
    """

    def __init__(self, trt, opt_level: int, workspace_mb: int | None):
        self.trt, self.opt_level, self.workspace_mb = trt, opt_level, workspace_mb
        self.logger = capturing_logger(trt)
        self.builder = trt.Builder(self.logger)
        self.cache_path: Path | None = None
        self._cache_bytes = b""
        self._cache = None

    def attach_cache(self, path: Path) -> None:
        """Use (and after each build, save) the timing cache at `path`; load it if it exists.

        Raises LatbenchError at once when the file cannot serve this GPU and TensorRT, so a table
        build stops before its first key instead of failing every row.
        """
        self.cache_path = Path(path)
        self._cache_bytes = self.cache_path.read_bytes() if self.cache_path.is_file() else b""
        self._cache = None
        self.config()

    def config(self):
        """A builder config with the backend's settings and the shared timing cache attached."""
        trt = self.trt
        config = self.builder.create_builder_config()
        config.builder_optimization_level = self.opt_level
        if self.workspace_mb is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_mb << 20)
        # DETAILED makes the engine inspector list layer types, tensors and tactics.
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        # TF32 is on by default for fp32 tensors; an fp32 table means fp32 arithmetic. (A builder
        # flag about TF32, not precision: strongly typed networks keep it in 10.x and 11.x.)
        config.clear_flag(trt.BuilderFlag.TF32)
        if self._cache is None:
            self.logger.errors = []
            self._cache = config.create_timing_cache(self._cache_bytes)
            # A foreign or damaged blob is logged ("Magic tag does not match") and dropped.
            if self._cache is None or self.logger.errors:
                self._cache = None
                raise LatbenchError(f"{self._cache_label()}: TensorRT cannot read this timing cache; "
                                    "delete it (it only speeds up engine builds)")
        if not config.set_timing_cache(self._cache, ignore_mismatch=False):
            raise LatbenchError(f"{self._cache_label()}: this timing cache was made on another GPU or "
                                "TensorRT version; delete it (it only speeds up engine builds) or "
                                "measure into a new table")
        return config

    def _cache_label(self) -> str:
        return str(self.cache_path) if self.cache_path else "TensorRT timing cache"

    def build(self, onnx_bytes: bytes, label: str) -> bytes:
        """The serialized engine (plan) of an ONNX model; LatbenchError with TensorRT's reasons."""
        trt = self.trt
        self.logger.errors = []
        network = self.builder.create_network(network_flags(trt))
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx_bytes):
            reasons = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
            raise LatbenchError(f"TensorRT's ONNX parser rejected {label}: "
                                f"{'; '.join(reasons) or 'it gave no reason'}")
        plan = self.builder.build_serialized_network(network, self.config())
        if plan is None:
            reasons = "; ".join(self.logger.errors) or "see TensorRT's log above"
            raise LatbenchError(f"TensorRT could not build an engine for {label}: {reasons}")
        self.save_cache()
        return bytes(plan)

    def save_cache(self) -> None:
        """Write the timing cache beside the table (when one is attached)."""
        if self.cache_path is not None and self._cache is not None:
            write_atomic(self.cache_path, bytes(self._cache.serialize()))


@dataclass(frozen=True)
class IOTensor:
    """An engine input or output: name, direction, static shape, TensorRT DataType."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: object


def engine_io(trt, engine, label: str) -> list[IOTensor]:
    """The engine's I/O tensors; LatbenchError if a shape is dynamic (latbench exports static)."""
    out = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise LatbenchError(f"{label}: engine tensor {name} has a dynamic shape {shape}; "
                                "latbench times static shapes only")
        # Buffers are plain dense tensors: the engine's I/O must be linear (the default when no
        # allowed formats are set, which latbench never sets).
        fmt = engine.get_tensor_format(name)
        if fmt != trt.TensorFormat.LINEAR:
            raise LatbenchError(f"{label}: engine tensor {name} is in format {fmt}, not LINEAR")
        out.append(IOTensor(name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT, shape,
                            engine.get_tensor_dtype(name)))
    return out


def torch_dtype(trt, dtype):
    """torch dtype of a TensorRT DataType (buffers are torch tensors)."""
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.bfloat16: torch.bfloat16,
             trt.int8: torch.int8, trt.uint8: torch.uint8, trt.int32: torch.int32,
             trt.int64: torch.int64, trt.bool: torch.bool}
    if dtype not in table:
        raise LatbenchError(f"engine I/O type {dtype} has no torch buffer type")
    return table[dtype]


def deserialize(runtime, plan: bytes, label: str):
    """runtime.deserialize_cuda_engine, which returns None on failure (usually out of memory)."""
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise LatbenchError(f"TensorRT could not load the engine of {label} (out of GPU memory?)")
    return engine


def inspect_engine(trt, engine, io_names) -> EngineLayers:
    """Fused layers of an engine built with DETAILED profiling verbosity."""
    inspector = engine.create_engine_inspector()
    return parse_engine_info(inspector.get_engine_information(trt.LayerInformationFormat.JSON), io_names)


def scratch_bytes(engine) -> int:
    """Activation memory a context needs: device_memory_size_v2 (10.1+; 11 removed the v1 name)."""
    size = getattr(engine, "device_memory_size_v2", None)
    return int(engine.device_memory_size if size is None else size)


def context_on_scratch(trt, engine, ptr: int, size: int, label: str):
    """An execution context that runs in caller-owned activation memory at `ptr` (`size` bytes).

    Contexts that run one after another on one stream can share that memory, so K cold copies
    cost K weight copies, not K activation arenas.
    """
    context = engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
    if context is None:
        raise LatbenchError(f"TensorRT could not create an execution context for {label}")
    if hasattr(context, "set_device_memory"):  # 10.1+ (and 11): address and size
        context.set_device_memory(ptr, size)
    else:  # 10.0: address only
        context.device_memory = ptr
    return context


def export_bytes(target, precision: str, batch: int) -> tuple[bytes, float]:
    """(serialized ONNX, seconds spent) of a block or network; runs in the prefetch worker too."""
    from latbench.onnx_export import export_onnx

    t0 = time.perf_counter()
    data = export_onnx(target, precision=precision, batch=batch).SerializeToString()
    return data, time.perf_counter() - t0


def init_export_worker() -> None:
    """Initializer of the prefetch process: host work only, on few cores."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # export never needs the GPU being timed
    import torch

    torch.set_num_threads(2)
