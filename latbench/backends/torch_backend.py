"""PyTorch backend: BN-folded eval modules; on CUDA captured in a CUDA graph, on CPU run eagerly.

On the GPU a launcher is one CUDA graph that replays the block `unroll` times, so the harness
times GPU work, not Python launches: eager PyTorch at batch 1 is launch-bound and 4-7x slower than
the graph (measurement.md). The cold cache protocols cycle through K weight copies; on the GPU
those live in one flat buffer (`WeightCopies`) instead of K deep copies of the module, so
preparing a block costs one allocation and one copy kernel whatever K is. Where K is capped below
what flushes the L2 (blocks under ~245 KB of weights on a 60 MiB L2), the graph also reads a
scrub buffer of twice the L2 once per cycle (`Scrub`), and that read's own time, measured in a
graph of scrubs alone, is subtracted (row columns `cold_bytes`, `scrub_bytes`, `scrub_us`).

cuDNN chooses convolution kernels by its heuristics unless the table asks for autotuning
(`options["cudnn_benchmark"]`, recorded in the table's identity): heuristics depend only on the
shapes, so a block and the network that contains it run the same kernels in any process, and a
key costs no autotuning time. With autotuning on, each process times the candidates again and may
pick differently between the block and the network.
"""

from __future__ import annotations

import copy
from typing import Callable

from latbench import env
from latbench.arch import Arch
from latbench.backends.base import (Backend, BackendConfig, Executable, copies_needed, copy_bytes,
                                    scrub_bytes, target_bytes)
from latbench.errors import LatbenchError
from latbench.harness import CudaEventTimer, HostTimer
from latbench.precision import torch_dtype
from latbench.spec import BlockSpec

#: Memory the cold protocols may spend on copies.
COPY_CAP_BYTES = {"cuda": 4 << 30, "cpu": 1 << 30}
#: Each parameter of a weight copy starts on this boundary, as a fresh CUDA allocation would:
#: cuDNN picks vectorised kernels only for aligned pointers.
ALIGN_BYTES = 512


class TorchBackend(Backend):
    name = "torch"

    @classmethod
    def availability(cls, device: str) -> str | None:
        try:
            import torch
        except ImportError:
            return "torch is not installed (pip install torch)"
        if device == "cuda" and not torch.cuda.is_available():
            return "torch sees no CUDA GPU (CPU-only build or no driver); use --device cpu"
        return None

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        import torch

        self.torch = torch
        self.cudnn_benchmark = bool(config.options.get("cudnn_benchmark", False))
        if config.device == "cpu":
            if config.precision == "fp16":
                raise LatbenchError("torch on cpu measures fp32 or bf16; fp16 is a GPU precision")
            if self.cudnn_benchmark:
                raise LatbenchError("cudnn_benchmark applies to CUDA tables only")
            torch.set_num_threads(config.cpu_threads)
        else:
            torch.backends.cudnn.benchmark = self.cudnn_benchmark  # process-wide
            strict_fp32(torch)
        self.channels_last = bool(config.options.get("channels_last", True))

    @property
    def threads(self) -> int | None:
        return self.torch.get_num_threads() if self.config.device == "cpu" else None

    def identity(self) -> dict:
        # On CUDA, fp32 convolutions and matmuls run in true fp32 (no TF32; see strict_fp32), and
        # cuDNN's kernel choice (heuristics or autotuning) is part of what was measured.
        cuda = {"tf32": False, "cudnn_benchmark": self.cudnn_benchmark}
        return super().identity() | (cuda if self.config.device == "cuda" else {})

    def version(self) -> str:
        t = self.torch
        if self.config.device == "cuda":
            return f"{t.__version__} (CUDA {t.version.cuda}, cuDNN {t.backends.cudnn.version()})"
        return t.__version__

    def prepare(self, target: BlockSpec | Arch) -> Executable:
        from latbench.builders import example_input, inference_model  # torch, only when prepared

        torch, cfg = self.torch, self.config
        dtype = torch_dtype(cfg.precision)
        model = inference_model(target).to(device=cfg.device, dtype=dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        wbytes, ibytes = target_bytes(target, cfg.precision, cfg.batch)
        cache = (env.cuda_device_info() or {}).get("l2_bytes", 0) if cfg.device == "cuda" \
            else env.cpu_cache_bytes()
        kw, ki = copies_needed(cfg.protocol, wbytes, ibytes, cache, COPY_CAP_BYTES[cfg.device])
        inputs = [example_input(target, cfg.batch, cfg.device, dtype, self.channels_last, seed=i)
                  for i in range(ki)]
        info = {"copies": kw, "input_copies": ki}
        if cfg.device == "cuda":
            distinct = kw * copy_bytes(cfg.protocol, wbytes, ibytes)
            scrub = scrub_bytes(cfg.protocol, distinct, cache)
            if cfg.protocol != "warm":
                info |= {"cold_bytes": distinct, "scrub_bytes": scrub}
            return CudaGraphExecutable(model, WeightCopies(model, kw), inputs, info,
                                       Scrub.get(scrub) if scrub else None)
        return _EagerExecutable([model] + [copy.deepcopy(model) for _ in range(kw - 1)], inputs, info)


def strict_fp32(torch) -> None:
    """fp32 tables mean IEEE fp32 arithmetic: PyTorch lets cuDNN convolutions use TF32 by default.

    Set through the current API (`fp32_precision`, torch >= 2.9) for cuDNN as a whole and for
    matmuls, and through the legacy flags as well: some torch releases refuse to read a legacy
    flag (raise) once the two APIs disagree (2.13 does), and other code still reads them. Process-wide, like
    every torch.backends flag; fp16/bf16 tables are unaffected.
    """
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    if hasattr(cudnn, "fp32_precision"):
        cudnn.fp32_precision = "ieee"
        matmul.fp32_precision = "ieee"
    cudnn.allow_tf32 = False
    matmul.allow_tf32 = False


class WeightCopies:
    """K copies of a module's parameters in one flat allocation; `bind(k)` points the module at
    copy k.

    Each parameter slot starts ALIGN_BYTES after the previous one's start at least (the CUDA
    caching allocator returns the buffer itself on a 512-byte boundary). Binding rebinds `param.data` to a view: about
    10 us per call of Python time (torch.func.functional_call costs about 100 us), which matters
    only while a graph is captured; the kernels captured read whichever copy was bound.
    """

    def __init__(self, model, copies: int):
        import torch

        self.params = [p for p in model.parameters()]
        self.copies = copies
        if not self.params:
            self._views: list[list] = [[] for _ in range(copies)]
            return
        first = self.params[0]
        align = max(1, ALIGN_BYTES // first.element_size())
        offsets, total = [], 0
        for p in self.params:
            offsets.append(total)
            total += -(-p.numel() // align) * align
        self.buffer = torch.empty((copies, total), dtype=first.dtype, device=first.device)
        # Each view keeps its parameter's strides (channels_last weights stay channels_last).
        self._views = [[self.buffer[k, off:off + p.numel()].as_strided(p.shape, p.stride())
                        for p, off in zip(self.params, offsets)] for k in range(copies)]
        with torch.no_grad():
            for p, view in zip(self.params, self._views[0]):
                view.copy_(p)  # element by element, whatever the memory format
            self.buffer[1:] = self.buffer[0]  # one broadcast copy fills every other copy
        self.bind(0)

    def bind(self, k: int) -> None:
        for p, view in zip(self.params, self._views[k]):
            p.data = view

    def release(self) -> None:
        self._views, self.params, self.buffer = [], [], None


class _EagerExecutable(Executable):
    timer = HostTimer()

    def __init__(self, models, inputs, info):
        self.models, self.inputs, self.info = models, inputs, info

    def launcher(self, unroll: int) -> Callable[[], None]:
        import torch

        models, inputs = self.models, self.inputs
        cursor = 0  # successive calls continue the cycle through the copies

        def run():
            nonlocal cursor
            with torch.inference_mode():
                for i in range(cursor, cursor + unroll):
                    models[i % len(models)](inputs[i % len(inputs)])
            cursor = (cursor + unroll) % len(models)

        return run

    def release(self) -> None:
        self.models = self.inputs = None


class Scrub:
    """A buffer of `nbytes` on the current CUDA device and a read of all of it (a sum into a
    fixed scalar): run between cycles through cold copies, it leaves none of them in the L2.
    A read, not a write: no dirty lines for the next block to write back. One buffer per size,
    kept for the process (a key is prepared many times; the buffer is allocated once)."""

    _made: dict = {}

    def __init__(self, nbytes: int):
        import torch

        self.buffer = torch.rand(max(1, nbytes // 4), dtype=torch.float32, device="cuda")
        self.sink = torch.zeros((), dtype=torch.float32, device="cuda")

    @classmethod
    def get(cls, nbytes: int) -> "Scrub":
        import torch

        key = (torch.cuda.current_device(), nbytes)
        if key not in cls._made:
            cls._made[key] = cls(nbytes)
        return cls._made[key]

    def __call__(self) -> None:
        import torch

        torch.sum(self.buffer, dim=0, out=self.sink)


#: Scrubs per replay of the graph that times a scrub alone.
SCRUB_REPS = 8


class CudaGraphExecutable(Executable):
    """A block or network on CUDA; `launcher(unroll)` is a graph replaying it `unroll` times,
    execution i with weight copy i mod K and input i mod (input copies), and a `scrub` after each
    cycle of K when one is given (its time, `scrub_s`, is then `fixed_s`). `outputs[unroll]` holds
    the result of the last execution of that graph's latest replay."""

    timer = CudaEventTimer()

    def __init__(self, model, weights: WeightCopies, inputs, info, scrub: Scrub | None = None):
        import torch

        self.model, self.weights, self.inputs, self.info, self.scrub = model, weights, inputs, info, scrub
        # A graph is fixed, so it must hold whole cycles through the copies.
        self.min_unroll = weights.copies
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.outputs: dict[int, torch.Tensor] = {}
        # Eager passes on a side stream before capture: lazy initialisation (cuDNN handles, and
        # autotuning when it is on) must not happen inside the graph.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):
                model(inputs[0])
                if scrub is not None:
                    scrub()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        self.scrub_s = self._time_scrub() if scrub is not None else 0.0
        if scrub is not None:
            self.info["scrub_us"] = round(self.scrub_s * 1e6, 3)

    def _time_scrub(self) -> float:
        """Seconds of one scrub: the median of 5 replays of a graph of SCRUB_REPS scrubs."""
        import torch

        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(SCRUB_REPS):
                self.scrub()
        graph.replay()  # the first replay after capture is not a sample
        samples = sorted(self.timer.time(graph.replay, 5))
        return samples[len(samples) // 2] / SCRUB_REPS

    def fixed_s(self, unroll: int) -> float:
        return self.scrub_s * (unroll // self.weights.copies)

    def launcher(self, unroll: int) -> Callable[[], None]:
        import torch

        if unroll not in self._graphs:
            if len(self._graphs) > 1:  # keep the first (probe) graph and one more: memory stays bounded
                other = list(self._graphs)[1]
                self.outputs.pop(other)
                self._graphs.pop(other)
            graph = torch.cuda.CUDAGraph()
            model, inputs, weights = self.model, self.inputs, self.weights
            with torch.inference_mode(), torch.cuda.graph(graph):
                for i in range(unroll):
                    weights.bind(i % weights.copies)
                    out = model(inputs[i % len(inputs)])
                    if self.scrub is not None and (i + 1) % weights.copies == 0:
                        self.scrub()
            weights.bind(0)
            self.outputs[unroll], self._graphs[unroll] = out, graph
        return self._graphs[unroll].replay

    def release(self) -> None:
        self._graphs.clear()
        self.outputs.clear()
        self.weights.release()
        self.model = self.inputs = None
