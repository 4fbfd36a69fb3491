"""TensorRT backend: ONNX in the table's precision -> strongly typed engine -> CUDA graph.

A block (or a whole network) is exported to ONNX with weights and I/O in the table's precision,
built into an engine whose precisions come from those ONNX types (STRONGLY_TYPED on 10.x, always
so on 11.x; no precision builder flags, which 11.0 removed), and run with torch-owned CUDA buffers.
A launcher is one CUDA graph that captured `unroll` ``execute_async_v3`` calls, so the harness
times GPU work back to back, as trtexec does. Every build of a table (blocks and whole networks)
shares one timing cache kept beside the table, and runs at a fixed builder optimisation level, so
tactic choices agree between a block and the network that contains it (measurement.md).

TensorRT is imported only inside functions: this module imports anywhere.
"""

from __future__ import annotations

import time
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from latbench import env
from latbench.arch import Arch
from latbench.backends import trt_engine as te
from latbench.backends.base import (Backend, BackendConfig, Executable, copies_needed,
                                    target_bytes)
from latbench.errors import LatbenchError
from latbench.harness import CudaEventTimer
from latbench.spec import BlockSpec

TRT_MISSING = ("TensorRT is not installed: pip install latbench[trt] on a machine with an NVIDIA GPU "
               "and access to NVIDIA's package index (pypi.nvidia.com)")
NO_GPU = "TensorRT needs an NVIDIA GPU and torch sees none"
CPU_ONLY = "TensorRT runs on NVIDIA GPUs only; use --device cuda"
CACHE_SUFFIX = ".trt-timing-cache"
DEFAULT_OPT_LEVEL = 3
#: GPU memory the cold protocols may spend on engine copies.
COPY_CAP_BYTES = 4 << 30


def timing_cache_path(table_path) -> Path:
    """The timing cache file kept beside a table: TABLE + ".trt-timing-cache"."""
    return Path(str(table_path) + CACHE_SUFFIX)


def resolve_options(options: dict) -> dict:
    """Checked options with defaults: opt_level (int 0-5, default 3), workspace_mb (int > 0 or None).

    Level 0 takes the first tactic that runs and ignores the timing cache (NvInfer.h), so block
    and network engines may then pick different kernels: keep 1-5 for tables.
    """
    unknown = set(options) - {"opt_level", "workspace_mb"}
    if unknown:
        raise LatbenchError(f"unknown TensorRT option(s) {', '.join(sorted(unknown))}; "
                            "use opt_level, workspace_mb")
    level = options.get("opt_level")
    level = DEFAULT_OPT_LEVEL if level is None else level
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 5:
        raise LatbenchError(f"TensorRT opt_level must be an integer from 0 to 5, got {level!r}")
    mb = options.get("workspace_mb")
    if mb is not None and (isinstance(mb, bool) or not isinstance(mb, int) or mb < 1):
        raise LatbenchError(f"TensorRT workspace_mb must be a positive integer (MiB) or unset, got {mb!r}")
    return {"opt_level": level, "workspace_mb": mb}


def target_label(target: BlockSpec | Arch) -> str:
    return target.key if isinstance(target, BlockSpec) else f"network {target.name or '(unnamed)'}"


class TensorRTBackend(Backend):
    name = "tensorrt"

    @classmethod
    def availability(cls, device: str) -> str | None:
        if device != "cuda":
            return CPU_ONLY
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return TRT_MISSING
        except OSError as err:  # the package is there but its shared libraries do not load
            return f"TensorRT is installed but does not load ({err}); reinstall latbench[trt]"
        try:
            import torch
        except ImportError:
            return "torch is not installed (pip install torch)"
        return None if torch.cuda.is_available() else NO_GPU

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self.options = resolve_options(config.options)
        import tensorrt as trt
        import torch

        self.trt = trt
        torch.cuda.init()  # TensorRT then works in the CUDA context torch uses
        self.builder = te.EngineBuilder(trt, **self.options)
        self.runtime = trt.Runtime(self.builder.logger)
        self.l2_bytes = (env.cuda_device_info() or {}).get("l2_bytes", 0)
        self.prefetcher = Prefetcher(config.precision, config.batch)

    def version(self) -> str:
        return self.trt.__version__

    def identity(self) -> dict:
        # Options with their defaults filled in, so `--backend auto` and explicit defaults agree;
        # tf32: fp32 layers run in true fp32 (TensorRT allows TF32 unless told otherwise).
        return {"name": self.name, "version": self.version(), "options": dict(self.options),
                "tf32": False}

    def attach_table(self, path) -> None:
        super().attach_table(path)
        self.builder.attach_cache(timing_cache_path(path))

    def prefetch(self, targets: list) -> None:
        self.prefetcher.submit(targets)

    def prepare(self, target: BlockSpec | Arch) -> Executable:
        """Export, build, load and warm up a block or a whole network.

        The executable's info (recorded in the table row): trt_version, opt_level, engine_layers
        (fused layer names), engine_id (hash of layers and tactics), reformat_at_io and
        reformat_io_layers (reformats at the engine's I/O, absent inside a network), export_s,
        export_prefetched, build_s, load_s (seconds), copies and input_copies (cold protocols).
        """
        cfg, trt, label = self.config, self.trt, target_label(target)
        onnx_bytes, export_s, prefetched = self.prefetcher.take(target)
        t0 = time.perf_counter()
        plan = self.builder.build(onnx_bytes, label)
        build_s = time.perf_counter() - t0
        wbytes, ibytes = target_bytes(target, cfg.precision, cfg.batch)
        kw, ki = copies_needed(cfg.protocol, wbytes, ibytes, self.l2_bytes, COPY_CAP_BYTES)
        t0 = time.perf_counter()
        engines = [te.deserialize(self.runtime, plan, label) for _ in range(kw)]
        io = te.engine_io(trt, engines[0], label)
        layers = te.inspect_engine(trt, engines[0], [t.name for t in io])
        info = {
            "trt_version": self.version(), "opt_level": self.options["opt_level"],
            "engine_layers": list(layers.names), "engine_id": layers.identity(),
            "reformat_at_io": bool(layers.reformat_io_layers),
            "reformat_io_layers": list(layers.reformat_io_layers),
            "export_s": round(export_s, 4), "export_prefetched": prefetched,
            "build_s": round(build_s, 4), "copies": kw, "input_copies": ki,
        }
        exe = TrtExecutable(trt, engines, io, ki, plan, label, info)
        info["load_s"] = round(time.perf_counter() - t0, 4)  # deserialize, buffers, capture warm-up
        return exe

    def close(self) -> None:
        self.prefetcher.close()


class Prefetcher:
    """ONNX export of the next targets in one spawned worker process, while a block is timed.

    A process, not a thread: export is Python-heavy and holds the GIL, and a thread holding it
    would delay the timing loop between a graph replay (which releases the GIL) and its end
    event, inflating GPU samples. Engine building is not prefetched: it times tactics on the GPU.
    """

    MAX_PENDING = 8

    def __init__(self, precision: str, batch: int):
        self.precision, self.batch = precision, batch
        self._pool: ProcessPoolExecutor | None = None
        self._pending: dict = {}

    def submit(self, targets: list) -> None:
        for target in targets:
            if target in self._pending:
                continue
            if self._pool is None:
                self._pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"),
                                                 initializer=te.init_export_worker)
            self._pending[target] = self._pool.submit(te.export_bytes, target, self.precision, self.batch)
        while len(self._pending) > self.MAX_PENDING:  # targets the build skipped past
            self._pending.pop(next(iter(self._pending))).cancel()

    def take(self, target) -> tuple[bytes, float, bool]:
        """(ONNX bytes, export seconds, whether the export ran ahead in the worker)."""
        future = self._pending.pop(target, None)
        if future is not None:
            try:
                data, seconds = future.result()
                return data, seconds, True
            except BrokenExecutor:  # the worker died (killed, out of memory): export here
                self._pool = None
        data, seconds = te.export_bytes(target, self.precision, self.batch)
        return data, seconds, False

    def close(self) -> None:
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class TrtExecutable(Executable):
    """K engine copies (K = 1 for warm) with contexts and torch I/O buffers; each launcher is a
    CUDA graph of `unroll` execute_async_v3 calls cycling through the copies.

    plan: the serialized engine that is timed (bench/trtexec_check.sh saves it for trtexec).
    """

    timer = CudaEventTimer()

    def __init__(self, trt, engines: list, io: list, input_copies: int, plan: bytes, label: str,
                 info: dict):
        import torch

        self.plan, self.info, self.label, self.engines = plan, info, label, engines
        # A graph is fixed, so it must hold the whole cycle through the copies.
        self.min_unroll = len(engines)
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        gen = torch.Generator(device="cuda").manual_seed(0)
        self.buffers = {t.name: [_buffer(trt, t, gen) for _ in range(input_copies if t.is_input else 1)]
                        for t in io}
        self.scratch = None
        if len(engines) > 1:
            size = max(te.scratch_bytes(e) for e in engines)
            self.scratch = torch.empty(max(size, 1), dtype=torch.uint8, device="cuda")
        self.contexts = [self._context(trt, e, io, i) for i, e in enumerate(engines)]
        # TensorRT must run once before capture (lazy initialisation must not be captured);
        # a side stream, because the default stream makes TensorRT synchronise the device.
        # Capture happens on the same stream (trtexec warms up and captures on one stream).
        self._side = side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        for context in self.contexts:
            self._enqueue(context, side.cuda_stream)
        side.synchronize()

    def _context(self, trt, engine, io, copy: int):
        if self.scratch is None:
            context = engine.create_execution_context()
            if context is None:
                raise LatbenchError(f"TensorRT could not create an execution context for {self.label}")
        else:
            context = te.context_on_scratch(trt, engine, self.scratch.data_ptr(), self.scratch.numel(),
                                            self.label)
        for t in io:
            copies = self.buffers[t.name]
            if t.is_input and not context.set_input_shape(t.name, t.shape):
                raise LatbenchError(f"{self.label}: TensorRT refused input shape {t.shape} for {t.name}")
            if not context.set_tensor_address(t.name, copies[copy % len(copies)].data_ptr()):
                raise LatbenchError(f"{self.label}: TensorRT refused the buffer of {t.name}")
        return context

    def _enqueue(self, context, stream: int) -> None:
        if not context.execute_async_v3(stream):
            raise LatbenchError(f"{self.label}: TensorRT execute_async_v3 failed")

    def launcher(self, unroll: int) -> Callable[[], None]:
        import torch

        if unroll not in self._graphs:
            if len(self._graphs) > 1:  # keep the probe graph and one more: memory stays bounded
                self._graphs.pop(max(self._graphs))
            graph = torch.cuda.CUDAGraph()
            failed = False
            try:
                # thread_local capture mode, as trtexec captures (samples/common/sampleDevice.h).
                with torch.cuda.graph(graph, stream=self._side, capture_error_mode="thread_local"):
                    stream = self._side.cuda_stream
                    for i in range(unroll):
                        # False means the capture broke; stop enqueuing and let it end.
                        if not self.contexts[i % len(self.contexts)].execute_async_v3(stream):
                            failed = True
                            break
            except RuntimeError as err:  # ending a broken capture raises
                raise LatbenchError(f"{self.label}: TensorRT's execution could not be captured in a "
                                    f"CUDA graph ({str(err).splitlines()[0]})") from None
            if failed:
                raise LatbenchError(f"{self.label}: TensorRT execute_async_v3 failed during CUDA graph "
                                    "capture (the engine cannot be captured)")
            self._graphs[unroll] = graph
        return self._graphs[unroll].replay

    def release(self) -> None:
        # Graphs first (they replay the contexts), then contexts, engines, and last the memory
        # their recorded addresses point to.
        self._graphs.clear()
        self.contexts = self.engines = self._side = None
        self.buffers = self.scratch = self.plan = None


def _buffer(trt, tensor: te.IOTensor, gen):
    """A torch CUDA tensor for an engine I/O tensor; inputs get seeded normal values."""
    import torch

    dtype = te.torch_dtype(trt, tensor.dtype)
    if tensor.is_input and dtype.is_floating_point:
        return torch.randn(tensor.shape, generator=gen, device="cuda").to(dtype)
    return torch.zeros(tensor.shape, dtype=dtype, device="cuda")
