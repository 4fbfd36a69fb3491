"""Precisions: the one place that names them and maps them to element sizes and dtypes.

A table's precision is the type of the weights and activations its blocks were timed in; the
same name selects the torch dtype of built modules, the numpy dtype of ONNX Runtime inputs and
the element size of analytic byte counts.
"""

from __future__ import annotations

from latbench.errors import LatbenchError

PRECISIONS = ("fp32", "fp16", "bf16")
ELEM_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


def check(precision) -> str:
    """`precision` if latbench knows it, else a LatbenchError naming the choices."""
    if precision not in PRECISIONS:
        raise LatbenchError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return precision


def elem_bytes(precision: str) -> int:
    """Bytes per element of a tensor in `precision`."""
    return ELEM_BYTES[check(precision)]


def torch_dtype(precision: str):
    """The torch dtype of `precision`."""
    import torch  # heavy, and only the builders need it: the predictor never imports torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[check(precision)]


def numpy_dtype(precision: str):
    """The numpy dtype of `precision`; bf16 has none (LatbenchError)."""
    import numpy as np

    if check(precision) == "bf16":
        raise LatbenchError("numpy has no bfloat16: bf16 runs through torch or TensorRT only")
    return {"fp32": np.float32, "fp16": np.float16}[precision]
