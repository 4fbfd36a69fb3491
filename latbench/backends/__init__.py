"""Backend registry. Backends are imported lazily: TensorRT and ONNX Runtime load only when used."""

from __future__ import annotations

import os
from importlib import import_module

from latbench.backends.base import Backend, BackendConfig, BackendUnavailableError, Executable
from latbench.errors import LatbenchError

_REGISTRY = {
    "tensorrt": "latbench.backends.tensorrt_backend:TensorRTBackend",
    "torch": "latbench.backends.torch_backend:TorchBackend",
    "onnxruntime": "latbench.backends.ort_backend:OrtBackend",
}
NAMES = tuple(_REGISTRY)


def backend_class(name: str) -> type[Backend]:
    if name not in _REGISTRY:
        raise LatbenchError(f"unknown backend {name!r}; use auto, {', '.join(NAMES)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(import_module(module), cls)


def availability(device: str) -> dict[str, str | None]:
    """Backend name -> None if usable on `device` here, else why not."""
    return {name: backend_class(name).availability(device) for name in NAMES}


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def resolve(backend: str, device: str | None) -> tuple[str, str, str]:
    """Pick (backend, device, why) for `--backend auto|NAME` and `--device cuda|cpu|None`.

    auto: TensorRT where it is importable with a GPU, else torch on CUDA, else torch on CPU.
    """
    if device not in (None, "cpu", "cuda"):
        raise LatbenchError(f"unknown device {device!r}; use cpu or cuda")
    if backend == "auto":
        if device != "cpu" and cuda_available():
            reason = backend_class("tensorrt").availability("cuda")
            if reason is None:
                return "tensorrt", "cuda", "auto: TensorRT and a GPU are present"
            return "torch", "cuda", f"auto: torch on CUDA (TensorRT unusable: {reason})"
        if device == "cuda":
            raise LatbenchError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu")
        return "torch", "cpu", "auto: no GPU visible, torch on CPU"
    cls = backend_class(backend)
    device = device or ("cuda" if backend == "tensorrt" or cuda_available() else "cpu")
    reason = cls.availability(device)
    if reason:
        raise BackendUnavailableError(backend, device, reason)
    return backend, device, f"{backend} on {device}, as asked"


def create(name: str, config: BackendConfig) -> Backend:
    """A backend for `config` on this machine; LatbenchError when the CPU threads it asks for
    exceed this machine's CPUs (oversubscribed timings measure the scheduler, and libgomp aborts
    the process outright when it cannot start them)."""
    if config.device == "cpu":
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if config.cpu_threads > cpus:
            raise LatbenchError(f"{config.cpu_threads} CPU threads asked, and this machine gives latbench {cpus}: "
                                f"use --threads 1 to {cpus}")
    return backend_class(name)(config)


__all__ = ["Backend", "BackendConfig", "Executable", "NAMES", "availability", "backend_class",
           "create", "resolve"]
