"""ONNX export: static shapes, precision of weights and I/O, named tensors, ONNX Runtime == torch."""

from __future__ import annotations

import onnx
import pytest

from latbench import load_arch
from latbench.onnx_export import check_with_onnxruntime, export_onnx
from test_builders import BLOCKS

ELEM = {"fp32": onnx.TensorProto.FLOAT, "fp16": onnx.TensorProto.FLOAT16, "bf16": onnx.TensorProto.BFLOAT16}


@pytest.mark.parametrize("spec", BLOCKS, ids=lambda s: s.key)
def test_each_block_kind_runs_in_onnxruntime_and_matches_torch(spec):
    proto = export_onnx(spec, batch=2)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "output")
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == [2, spec.in_channels, spec.height, spec.width]  # static shape
    assert proto.opset_import[0].version >= 17
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)  # BN folded
    assert check_with_onnxruntime(proto, spec, batch=2) < 1e-4


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_low_precision_has_low_precision_weights_and_io(precision):
    spec = BLOCKS[4]
    proto = export_onnx(spec, precision=precision)
    assert proto.graph.input[0].type.tensor_type.elem_type == ELEM[precision]
    assert proto.graph.output[0].type.tensor_type.elem_type == ELEM[precision]
    floats = {i.data_type for i in proto.graph.initializer if i.data_type in ELEM.values()}
    assert floats == {ELEM[precision]}
    if precision == "fp16":
        assert check_with_onnxruntime(proto, spec, precision="fp16") < 2e-2


def test_gpunet0_exports_and_matches_torch(tmp_path):
    arch = load_arch("gpunet-0")
    path = tmp_path / "gpunet0.onnx"
    proto = export_onnx(arch, path)
    assert path.is_file()
    onnx.checker.check_model(str(path), full_check=True)
    assert check_with_onnxruntime(proto, arch) < 1e-3
