"""ONNX export of a block or a whole network, cleaned with onnx-graphsurgeon and checked.

The exported graph is what ONNX Runtime and TensorRT time: BN folded, static shapes, weights and
I/O in the table's precision (fp16 weights and I/O for an fp16 table, so a strongly typed TensorRT
network gets fp16 kernels), one input named "input" and one output named "output".
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from latbench.arch import Arch
from latbench.blocks import BlockSpec
from latbench.builders import example_input, inference_model
from latbench.errors import LatbenchError
from latbench.files import write_bytes
from latbench.precision import numpy_dtype, torch_dtype

DEFAULT_OPSET = 17
INPUT, OUTPUT = "input", "output"


def _torch_export(model, x, opset: int) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # the TorchScript-based exporter: ~20x faster per block than the dynamo one
            torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=opset,
                              input_names=[INPUT], output_names=[OUTPUT], do_constant_folding=True)
            return buf.getvalue()
        except (TypeError, RuntimeError, AttributeError) as err:  # removed in a future torch
            # The dynamo exporter needs onnxscript; an out-of-memory trace is not a missing exporter.
            if importlib.util.find_spec("onnxscript") is None or "memory" in str(err).lower():
                raise
            program = torch.onnx.export(model, (x,), dynamo=True, opset_version=max(opset, 18),
                                        input_names=[INPUT], output_names=[OUTPUT])
            return program.model_proto.SerializeToString()


def clean_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold constants, drop dead nodes, sort topologically, name the one input and output."""
    # graphsurgeon logs to stdout ("[W] ... bfloat16"), which belongs to the command's result
    # (`--json`): its messages go to stderr, and only errors are shown.
    with contextlib.redirect_stdout(sys.stderr):
        import onnx_graphsurgeon as gs

        gs.logger.G_LOGGER.severity = gs.logger.G_LOGGER.ERROR
        graph = gs.import_onnx(model)
        graph.fold_constants().cleanup().toposort()
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise RuntimeError(f"expected one input and one output, got {len(graph.inputs)}/{len(graph.outputs)}")
        graph.inputs[0].name, graph.outputs[0].name = INPUT, OUTPUT
        return gs.export_onnx(graph)


def export_onnx(
    target: BlockSpec | Arch, path: str | Path | None = None, *, precision: str = "fp32",
    batch: int = 1, opset: int = DEFAULT_OPSET, seed: int = 0,
) -> onnx.ModelProto:
    """Export a block or network to ONNX (static shape [batch, C, H, W]); write `path` if given."""
    if opset < 17:
        raise LatbenchError(f"opset {opset} is too old; latbench exports opset >= 17")
    dtype = torch_dtype(precision)
    model = inference_model(target, seed).to(dtype)
    x = example_input(target, batch, dtype=dtype, channels_last=False, seed=seed)
    proto = clean_graph(onnx.load_from_string(_torch_export(model, x, opset)))
    # ONNX's type constraints admit bfloat16 Conv only from opset 22 (the exporters stop earlier);
    # TensorRT's parser accepts it, so bf16 graphs get the structural check without type inference.
    onnx.checker.check_model(proto, full_check=precision != "bf16")
    if path is not None:
        write_bytes(path, proto.SerializeToString())  # whole or not at all
    return proto


def check_with_onnxruntime(
    proto: onnx.ModelProto, target: BlockSpec | Arch, *, precision: str = "fp32", batch: int = 1,
    seed: int = 0,
) -> float:
    """Run the ONNX graph in ONNX Runtime (CPU) and return the max abs error against torch (fp32
    reference computed from the same weights). Raises if ONNX Runtime cannot run it."""
    import onnxruntime as ort

    model = inference_model(target, seed)
    x = example_input(target, batch, channels_last=False, seed=seed)
    with torch.no_grad():
        want = model(x).numpy()
    if precision == "bf16":
        raise LatbenchError("ONNX Runtime's CPU provider cannot run bf16 graphs")
    dtype = numpy_dtype(precision)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], {INPUT: x.numpy().astype(dtype)})[0]
    return float(np.max(np.abs(got.astype(np.float32) - want)))
