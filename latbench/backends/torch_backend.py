"""PyTorch backend: BN-folded eval modules; on CUDA captured in a CUDA graph, on CPU run eagerly.

On the GPU a launcher is one CUDA graph that replays the block `unroll` times (cycling through
weight/input copies for the cold protocols), so the harness times GPU work, not Python launches:
eager PyTorch at batch 1 is launch-bound and 4-7x slower than the graph (measurement.md).
"""

from __future__ import annotations

import copy
from typing import Callable

from latbench import env
from latbench.arch import Arch
from latbench.backends.base import (Backend, BackendConfig, Executable, copies_needed,
                                    target_bytes)
from latbench.errors import LatbenchError
from latbench.harness import CudaEventTimer, HostTimer
from latbench.spec import BlockSpec

#: Memory the cold protocols may spend on copies.
COPY_CAP_BYTES = {"cuda": 4 << 30, "cpu": 1 << 30}


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
        if config.device == "cpu":
            if config.precision == "fp16":
                raise LatbenchError("torch on cpu measures fp32 or bf16; fp16 is a GPU precision")
            torch.set_num_threads(config.cpu_threads)
        else:
            torch.backends.cudnn.benchmark = True
            _strict_fp32(torch)
        self.channels_last = bool(config.options.get("channels_last", True))

    @property
    def threads(self) -> int | None:
        return self.torch.get_num_threads() if self.config.device == "cpu" else None

    def identity(self) -> dict:
        # On CUDA, fp32 convolutions and matmuls run in true fp32 (no TF32; see _strict_fp32).
        return super().identity() | ({"tf32": False} if self.config.device == "cuda" else {})

    def version(self) -> str:
        t = self.torch
        if self.config.device == "cuda":
            return f"{t.__version__} (CUDA {t.version.cuda}, cuDNN {t.backends.cudnn.version()})"
        return t.__version__

    def prepare(self, target: BlockSpec | Arch) -> Executable:
        from latbench.builders import example_input
        from latbench.onnx_export import inference_model, torch_dtype

        torch, cfg = self.torch, self.config
        dtype = torch_dtype(cfg.precision)
        model = inference_model(target).to(device=cfg.device, dtype=dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        wbytes, ibytes = target_bytes(target, cfg.precision, cfg.batch)
        cache = (env.cuda_device_info() or {}).get("l2_bytes", 0) if cfg.device == "cuda" \
            else env.cpu_cache_bytes()
        kw, ki = copies_needed(cfg.protocol, wbytes, ibytes, cache, COPY_CAP_BYTES[cfg.device])
        models = [model] + [copy.deepcopy(model) for _ in range(kw - 1)]
        inputs = [example_input(target, cfg.batch, cfg.device, dtype, self.channels_last, seed=i)
                  for i in range(ki)]
        info = {"copies": kw, "input_copies": ki}
        if cfg.device == "cuda":
            return _CudaGraphExecutable(models, inputs, info)
        return _EagerExecutable(models, inputs, info)


def _strict_fp32(torch) -> None:
    """fp32 tables mean fp32 arithmetic: PyTorch lets cuDNN convolutions use TF32 by default.
    Process-wide, like every torch.backends flag; fp16/bf16 tables are unaffected."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # the API of torch >= 2.9
        conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


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


class _CudaGraphExecutable(Executable):
    timer = CudaEventTimer()

    def __init__(self, models, inputs, info):
        import torch

        self.models, self.inputs, self.info = models, inputs, info
        # A graph is fixed, so it must hold the whole cycle through the copies.
        self.min_unroll = len(models)
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        # Eager passes on a side stream before capture: cuDNN autotuning and lazy init happen here.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for m, x in zip(models, inputs * len(models)):
                m(x)
            models[0](inputs[0])
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()

    def launcher(self, unroll: int) -> Callable[[], None]:
        import torch

        if unroll not in self._graphs:
            if len(self._graphs) > 1:  # keep the probe graph and one more: memory stays bounded
                self._graphs.pop(max(self._graphs))
            graph = torch.cuda.CUDAGraph()
            models, inputs = self.models, self.inputs
            with torch.inference_mode(), torch.cuda.graph(graph):
                for i in range(unroll):
                    models[i % len(models)](inputs[i % len(inputs)])
            self._graphs[unroll] = graph
        return self._graphs[unroll].replay

    def release(self) -> None:
        self._graphs.clear()
        self.models = self.inputs = None
