"""ONNX Runtime backend: the foundation exporter's ONNX in one session, cache protocol warm.

On the CPU execution provider the host clock times the calls (they are synchronous). On CUDA the
CUDA execution provider (or the TensorRT one, when the installed build has it and
`options["ort_tensorrt"]` is set) runs with I/O bound to GPU tensors; the call returns after its
stream is synchronised, so the host clock again times the work, launch overhead included.
"""

from __future__ import annotations

from typing import Callable

from latbench.arch import Arch
from latbench.backends.base import Backend, BackendConfig, Executable
from latbench.errors import LatbenchError
from latbench.blocks import BlockSpec
from latbench.harness import HostTimer
from latbench.precision import numpy_dtype


def _providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


class OrtBackend(Backend):
    name = "onnxruntime"

    @classmethod
    def availability(cls, device: str) -> str | None:
        try:
            providers = _providers()
        except ImportError:
            return "onnxruntime is not installed (pip install onnxruntime)"
        if device == "cuda" and "CUDAExecutionProvider" not in providers:
            return ("this onnxruntime build has no CUDA execution provider "
                    "(pip install onnxruntime-gpu on a machine with an NVIDIA GPU)")
        return None

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        import onnxruntime as ort

        if config.precision == "bf16":
            raise LatbenchError("onnxruntime backend measures fp32 or fp16; bf16 is not supported")
        if config.device == "cpu" and config.precision == "fp16":
            raise LatbenchError("onnxruntime on cpu measures fp32; fp16 is a GPU precision")
        if config.protocol != "warm":
            # Each ONNX Runtime session owns its weights and its thread pool: hundreds of
            # sessions (one per cold copy) thrash the cores and take minutes to create.
            raise LatbenchError(f"the onnxruntime backend supports cache protocol warm only, "
                                f"not {config.protocol}; use --protocol warm or --backend torch")
        self.ort = ort
        self.threads = config.cpu_threads if config.device == "cpu" else None
        if config.device == "cpu":
            self.providers = ["CPUExecutionProvider"]
        elif config.options.get("ort_tensorrt") and "TensorrtExecutionProvider" in _providers():
            self.providers = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
        else:
            self.providers = ["CUDAExecutionProvider"]

    def version(self) -> str:
        return f"{self.ort.__version__} ({self.providers[0]})"

    def _session(self, model_bytes: bytes):
        opts = self.ort.SessionOptions()
        opts.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        return self.ort.InferenceSession(model_bytes, opts, providers=self.providers)

    def prepare(self, target: BlockSpec | Arch) -> Executable:
        import numpy as np

        from latbench.onnx_export import export_onnx  # onnx and torch, only when a block is prepared

        cfg = self.config
        model_bytes = export_onnx(target, precision=cfg.precision, batch=cfg.batch).SerializeToString()
        session = self._session(model_bytes)
        first = target.blocks[0] if isinstance(target, Arch) else target
        shape = (cfg.batch, first.in_channels, first.height, first.width)
        array = np.random.default_rng(0).standard_normal(shape).astype(numpy_dtype(cfg.precision))
        return _OrtExecutable(session, self._bind(session, array))

    def _bind(self, session, array):
        """Bind input and output once, so a timed call does no host<->device copy or allocation."""
        device = "cuda" if self.config.device == "cuda" else "cpu"
        binding = session.io_binding()
        value = self.ort.OrtValue.ortvalue_from_numpy(array, device, 0)
        binding.bind_ortvalue_input("input", value)
        binding.bind_output("output", device)
        session.run_with_iobinding(binding)  # allocates the bound output once
        binding._keep = value  # the OrtValue must outlive the binding
        return binding


class _OrtExecutable(Executable):
    timer = HostTimer()

    def __init__(self, session, binding):
        self.session, self.binding, self.info = session, binding, {}

    def launcher(self, unroll: int) -> Callable[[], None]:
        run_bound, binding = self.session.run_with_iobinding, self.binding

        def run():
            for _ in range(unroll):
                run_bound(binding)

        return run

    def release(self) -> None:
        self.session = self.binding = None
