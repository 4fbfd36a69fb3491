"""TensorRT backend, the parts that run without TensorRT or a GPU: ONNX per precision, engine
inspector JSON of 10.x and 11.x, options, timing cache, build plumbing (against a stand-in
`tensorrt` module with the real bindings' names), error messages, lazy import, prefetch."""

from __future__ import annotations

import enum
import importlib.util
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import onnx
import pytest

from latbench import HeadSpec, StagedArch, StageSpec, TailSpec
from latbench.backends import BackendConfig, create
from latbench.backends import trt_engine as te
from latbench.backends.base import BackendUnavailableError
from latbench.backends.tensorrt_backend import (CPU_ONLY, NO_GPU, TRT_MISSING, Prefetcher,
                                                TensorRTBackend, resolve_options, timing_cache_path)
from latbench.backends.trt_inspect import is_reformat, parse_engine_info
from latbench.errors import LatbenchError
from latbench.spec import BlockSpec

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
ELEM = {"fp32": onnx.TensorProto.FLOAT, "fp16": onnx.TensorProto.FLOAT16,
        "bf16": onnx.TensorProto.BFLOAT16}
BLOCK = BlockSpec(kind="irb", in_channels=16, out_channels=16, height=8, width=8, kernel=3, stride=1, expansion=2, se=True, act="relu")
TINY_NET = StagedArch(32, HeadSpec(8), (StageSpec.of(1, "conv", 8, 1),), TailSpec(16, 10), name="tiny").expand()


# --- ONNX in the table's precision -----------------------------------------------------------

@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("target", [BLOCK, TINY_NET], ids=["block", "network"])
def test_onnx_has_the_precision_on_weights_and_io(target, precision):
    data, seconds = te.export_bytes(target, precision, batch=2)
    proto = onnx.load_from_string(data)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "output")
    assert inp.type.tensor_type.elem_type == out.type.tensor_type.elem_type == ELEM[precision]
    assert inp.type.tensor_type.shape.dim[0].dim_value == 2  # static batch
    floats = {i.data_type for i in proto.graph.initializer if i.data_type in ELEM.values()}
    assert floats == {ELEM[precision]}  # a strongly typed network takes these precisions
    assert seconds > 0


# --- engine inspector JSON -------------------------------------------------------------------
# Written after the layout of TensorRT's own engine-graph examples (release/10.16,
# tools/experimental/trt-engine-explorer/examples/pytorch/resnet/A100/fp16/resnet.onnx.engine.graph.json)
# and the 10.x -> 11.x IEngineInspector migration page (docs.nvidia.com/deeplearning/tensorrt/
# 11.0.0/api/migration/tensorrt-10x-to-11x-IEngineInspector.html), for an fp32 I/O block whose
# convolutions run in a channel-major fp16 format.

def _tensor(name, fmt, v11):
    if v11:  # 11.x split "Format/Datatype" into separate fields
        return {"Name": name, "Location": "Device", "Dimensions": [1, 16, 8, 8], "Format": fmt,
                "DataType": "Half"}
    return {"Name": name, "Location": "Device", "Dimensions": [1, 16, 8, 8], "Format/Datatype": fmt}


def _layers(v11):
    t = lambda n, f="Channel major FP16 format where channel % 8 == 0": _tensor(n, f, v11)  # noqa: E731
    return [
        {"Name": "Reformatting CopyNode for Input Tensor 0 to /conv1/Conv + /act/Relu", "LayerType": "Reformat",
         "Inputs": [t("input", "Row major linear FP32")], "Outputs": [t("Reformatted Input Tensor 0")],
         "ParameterType": "Reformat", "Origin": "REFORMAT", "TacticValue": "0x0000000000000000"},
        {"Name": "/conv1/Conv + /act/Relu", "LayerType": "CaskConvolution",
         "Inputs": [t("Reformatted Input Tensor 0")], "Outputs": [t("/act/Relu_output_0")],
         "ParameterType": "Convolution", "Kernel": [1, 1], "Activation": "RELU",
         "TacticName": "sm90_xmma_fprop_implicit_gemm_f16f16_f16f16_f16_nhwckrsc_nhwc", "TacticValue": "0x1f"},
        {"Name": "/conv2/Conv + /Add", "LayerType": "CaskConvolution",
         "Inputs": [t("/act/Relu_output_0")], "Outputs": [t("/Add_output_0")], "TacticValue": "0x2a"},
        {"Name": "Reformatting CopyNode for Output Tensor 0 to /conv2/Conv + /Add", "LayerType": "Reformat",
         "Inputs": [t("/Add_output_0")], "Outputs": [t("output", "Row major linear FP32")],
         "Origin": "REFORMAT", "TacticValue": "0x00000000000003e8"},
    ]


ENGINE_10 = {"Layers": _layers(False), "Bindings": ["input", "output"]}
ENGINE_11 = {"Layers": _layers(True), "I/O Tensors": [
    {"Name": "input", "IOMode": "Input", "DataType": "Float", "Dimensions": [1, 16, 8, 8],
     "Location": "Device", "IsShapeInferenceIO": False,
     "ProfileInfo": [{"MinShape": [1, 16, 8, 8], "OptShape": [1, 16, 8, 8], "MaxShape": [1, 16, 8, 8],
                      "Format": "Row major linear FP32 format (kLINEAR)"}]},
    {"Name": "output", "IOMode": "Output", "DataType": "Float", "Dimensions": [1, 16, 8, 8],
     "Location": "Device", "IsShapeInferenceIO": False},
]}


@pytest.mark.parametrize("info", [ENGINE_10, ENGINE_11], ids=["trt10-Bindings", "trt11-IO-Tensors"])
def test_inspector_json_of_both_schemas(info):
    layers = parse_engine_info(json.dumps(info))
    assert layers.io_tensors == ("input", "output")
    assert layers.names[1] == "/conv1/Conv + /act/Relu"
    assert layers.types == ("Reformat", "CaskConvolution", "CaskConvolution", "Reformat")
    assert layers.tactics[1].startswith("sm90_xmma") and layers.tactics[1].endswith("|0x1f")
    assert layers.tactics[2] == "0x2a"
    assert layers.io_layers == (layers.names[0], layers.names[3])
    assert layers.reformat_io_layers == (layers.names[0], layers.names[3])
    assert parse_engine_info(info).identity() == layers.identity()  # decoded object works too


def test_identity_changes_with_the_tactic():
    other = json.loads(json.dumps(ENGINE_10))
    other["Layers"][2]["TacticValue"] = "0x2b"
    assert parse_engine_info(other).identity() != parse_engine_info(ENGINE_10).identity()


def test_engine_without_reformats_at_io():
    info = {"Layers": ENGINE_10["Layers"][1:3], "Bindings": ["Reformatted Input Tensor 0", "/Add_output_0"]}
    layers = parse_engine_info(info)
    assert layers.io_layers == (layers.names[0], layers.names[1])
    assert layers.reformat_layers == () and layers.reformat_io_layers == ()


def test_io_names_from_the_engine_api_are_merged():
    # A schema that names the I/O tensors some other way still finds the layers at the I/O.
    info = {"Layers": ENGINE_10["Layers"]}
    assert parse_engine_info(info).io_layers == ()
    layers = parse_engine_info(info, io_names=["input", "output"])
    assert layers.reformat_io_layers == (layers.names[0], layers.names[3])


def test_layer_names_only_verbosity():
    layers = parse_engine_info({"Layers": ["Reformatting CopyNode for Input Tensor 0 to c", "c"],
                                "Bindings": ["input", "output"]})
    assert layers.names == ("Reformatting CopyNode for Input Tensor 0 to c", "c")
    assert layers.types == ("", "") and layers.io_layers == ()
    assert layers.reformat_layers == (layers.names[0],)


@pytest.mark.parametrize("text", ["not json", "[]", '{"Bindings": []}'])
def test_unreadable_inspector_output_is_a_clear_error(text):
    with pytest.raises(LatbenchError, match="engine inspector"):
        parse_engine_info(text)


def test_reformat_detection():
    assert is_reformat("anything", "Reformat")
    assert is_reformat("Reformatting CopyNode for Output Tensor 0 to x", "NoOp")
    assert not is_reformat("/conv/Conv + /act/Relu", "CaskConvolution")


# --- options and timing cache ------------------------------------------------------------------

def test_options_defaults_and_values():
    assert resolve_options({}) == {"opt_level": 3, "workspace_mb": None}
    assert resolve_options({"opt_level": 5, "workspace_mb": 512}) == {"opt_level": 5, "workspace_mb": 512}
    assert resolve_options({"opt_level": None, "workspace_mb": None}) == {"opt_level": 3, "workspace_mb": None}


@pytest.mark.parametrize("options, match", [
    ({"opt_level": 6}, "opt_level"), ({"opt_level": True}, "opt_level"), ({"opt_level": "3"}, "opt_level"),
    ({"workspace_mb": 0}, "workspace_mb"), ({"workspace_mb": 1.5}, "workspace_mb"),
    ({"fp16": True}, "unknown TensorRT option"),
])
def test_bad_options_are_clear_errors(options, match):
    with pytest.raises(LatbenchError, match=match):
        resolve_options(options)


def test_timing_cache_lives_beside_the_table(tmp_path):
    assert timing_cache_path("tables/h200-tensorrt-fp16-b1.jsonl") == \
        Path("tables/h200-tensorrt-fp16-b1.jsonl.trt-timing-cache")
    target = tmp_path / "t.jsonl.trt-timing-cache"
    te.write_atomic(target, b"one")
    te.write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # nothing left aside


# --- build plumbing against a stand-in tensorrt module ----------------------------------------

# NetworkDefinitionCreationFlag numbering: 10.x (NvInfer.h release/10.x) and 11.x, where
# STRONGLY_TYPED is a deprecated no-op kept at 0.
FLAGS_10 = {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1, "PREFER_JIT_PYTHON_PLUGINS": 2,
            "PREFER_AOT_PYTHON_PLUGINS": 3}
FLAGS_11 = {"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1, "PREFER_AOT_PYTHON_PLUGINS": 2}


def fake_trt(flags=FLAGS_10, parse_ok=True, build_ok=True, cache_ok=True, cache_readable=True):
    """A stand-in with the binding names and argument names of TensorRT 10.x/11.x; it records
    calls. Its BuilderFlag has only TF32 and config has no set_flag: precision flags would fail
    loudly."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "11.4.0.fake"
    trt.calls = []

    class Severity(enum.IntEnum):
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    class ILogger:
        def __init__(self):
            pass

    ILogger.Severity = Severity
    trt.ILogger = ILogger
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", flags)
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", {"TF32": 7})
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", "WORKSPACE")
    trt.ProfilingVerbosity = enum.Enum("ProfilingVerbosity", "LAYER_NAMES_ONLY DETAILED NONE")

    class Cache:
        def __init__(self, data):
            self.data = bytes(data)

        def serialize(self):
            return memoryview(self.data + b"+entry")

    class Config:
        builder_optimization_level = 3
        profiling_verbosity = None

        def clear_flag(self, flag):
            trt.calls.append(("clear_flag", flag))

        def set_memory_pool_limit(self, pool, pool_size):
            trt.calls.append(("pool", pool, pool_size))

        def create_timing_cache(self, serialized_timing_cache):
            trt.calls.append(("create_cache", bytes(serialized_timing_cache)))
            if not cache_readable:  # what TensorRT does with a foreign blob: log, then start empty
                trt.logger.log(Severity.ERROR, "Error Code 1: Serialization (Magic tag does not match)")
                return Cache(b"")
            return Cache(serialized_timing_cache)

        def set_timing_cache(self, cache, ignore_mismatch):
            trt.calls.append(("set_cache", cache, ignore_mismatch))
            return cache_ok

    class Builder:
        def __init__(self, logger):
            self.logger = trt.logger = logger

        def create_network(self, flags=0):
            trt.calls.append(("network", flags))
            return object()

        def create_builder_config(self):
            config = Config()
            trt.calls.append(("config", config))
            return config

        def build_serialized_network(self, network, config):
            trt.calls.append(("build", config.builder_optimization_level, config.profiling_verbosity))
            if build_ok:
                return memoryview(b"PLAN")
            self.logger.log(Severity.ERROR, "no implementation for /conv/Conv")
            return None

    class OnnxParser:
        num_errors = 0 if parse_ok else 2

        def __init__(self, network, logger):
            pass

        def parse(self, model, path=None):
            return parse_ok

        def get_error(self, index):
            return types.SimpleNamespace(desc=lambda: f"unsupported op {index}")

    trt.Builder, trt.OnnxParser = Builder, OnnxParser
    return trt


def test_network_is_strongly_typed_where_the_flag_exists():
    assert te.network_flags(fake_trt(FLAGS_10)) == 1 << 1
    assert te.network_flags(fake_trt(FLAGS_11)) == 1 << 0  # deprecated no-op, harmless
    no_flag = {k: v for k, v in FLAGS_11.items() if k != "STRONGLY_TYPED"}
    assert te.network_flags(fake_trt(no_flag)) == 0  # a release that drops it: always strongly typed


def test_fp32_means_fp32_no_tf32():
    trt = fake_trt()
    te.EngineBuilder(trt, opt_level=3, workspace_mb=None).build(b"onnx", "blk")
    assert ("clear_flag", trt.BuilderFlag.TF32) in trt.calls




def test_builder_config_and_shared_timing_cache(tmp_path):
    trt = fake_trt()
    cache_file = tmp_path / "t.jsonl.trt-timing-cache"
    cache_file.write_bytes(b"OLD")
    b = te.EngineBuilder(trt, opt_level=5, workspace_mb=256)
    b.attach_cache(cache_file)
    assert b.build(b"onnx", "blk") == b"PLAN"
    assert b.build(b"onnx", "blk2") == b"PLAN"
    created = [c for c in trt.calls if c[0] == "create_cache"]
    assert created == [("create_cache", b"OLD")]  # loaded once, shared by every build
    sets = [c for c in trt.calls if c[0] == "set_cache"]
    assert len({id(c[1]) for c in sets}) == 1 and all(c[2] is False for c in sets)
    builds = [c for c in trt.calls if c[0] == "build"]
    assert builds == [("build", 5, trt.ProfilingVerbosity.DETAILED)] * 2
    assert ("pool", trt.MemoryPoolType.WORKSPACE, 256 << 20) in trt.calls
    assert [c[1] for c in trt.calls if c[0] == "network"] == [2, 2]
    assert cache_file.read_bytes() == b"OLD+entry"  # saved after the build


def test_without_a_table_the_cache_is_in_memory_and_no_workspace_limit(tmp_path):
    trt = fake_trt()
    b = te.EngineBuilder(trt, opt_level=3, workspace_mb=None)
    b.build(b"onnx", "blk")
    assert ("create_cache", b"") in trt.calls
    assert not [c for c in trt.calls if c[0] == "pool"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fake, content, problem", [
    ({"cache_ok": False}, b"FROM-A100", r".*another GPU.*delete it"),
    ({"cache_readable": False}, b"NOT A CACHE", r"TensorRT cannot read"),
])
def test_unusable_timing_cache_stops_the_build_at_once_and_is_kept(tmp_path, fake, content, problem):
    cache_file = tmp_path / "t.jsonl.trt-timing-cache"
    cache_file.write_bytes(content)
    b = te.EngineBuilder(fake_trt(**fake), opt_level=3, workspace_mb=None)
    with pytest.raises(LatbenchError, match=r"t\.jsonl\.trt-timing-cache: " + problem):
        b.attach_cache(cache_file)
    assert cache_file.read_bytes() == content


def test_parser_errors_are_in_the_message():
    b = te.EngineBuilder(fake_trt(parse_ok=False), opt_level=3, workspace_mb=None)
    with pytest.raises(LatbenchError, match="parser rejected irb-x: unsupported op 0; unsupported op 1"):
        b.build(b"onnx", "irb-x")


def test_failed_build_carries_tensorrt_errors(caplog):
    b = te.EngineBuilder(fake_trt(build_ok=False), opt_level=3, workspace_mb=None)
    with pytest.raises(LatbenchError, match="could not build an engine for blk: no implementation"):
        b.build(b"onnx", "blk")
    assert "no implementation" in caplog.text  # also forwarded to Python logging


# --- availability and the lazy import -----------------------------------------------------------

def test_cpu_device_is_refused_with_the_fix():
    assert TensorRTBackend.availability("cpu") == CPU_ONLY


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_missing_tensorrt_is_a_clear_error():
    assert TensorRTBackend.availability("cuda") == TRT_MISSING
    with pytest.raises(BackendUnavailableError) as err:
        create("tensorrt", BackendConfig(device="cuda"))
    assert str(err.value) == f"backend tensorrt cannot run on cuda here: {TRT_MISSING}"


def test_no_gpu_is_a_clear_error(monkeypatch):
    import torch

    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert TensorRTBackend.availability("cuda") == NO_GPU
    with pytest.raises(BackendUnavailableError, match=NO_GPU):
        create("tensorrt", BackendConfig(device="cuda", precision="fp16"))


def test_importing_the_backend_does_not_import_tensorrt():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tensorrt':\n"
        "            raise AssertionError('tensorrt imported at module level')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import latbench.backends.tensorrt_backend, latbench.backends.trt_engine, "
        "latbench.backends.trt_inspect\n"
        "from latbench.backends import backend_class\n"
        "assert backend_class('tensorrt').name == 'tensorrt'\n"
        "assert 'tensorrt' not in sys.modules and 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- prefetch ----------------------------------------------------------------------------------

def test_prefetch_exports_ahead_in_a_worker_process():
    pre = Prefetcher("fp16", 1)
    try:
        pre.submit([BLOCK])
        data, seconds, ahead = pre.take(BLOCK)
        assert ahead and seconds > 0
        assert data == te.export_bytes(BLOCK, "fp16", 1)[0]  # the same model as exported here
        other = BlockSpec(kind="conv", in_channels=8, out_channels=8, height=8, width=8, kernel=3, stride=1, act="relu")
        assert pre.take(other)[2] is False  # not prefetched: exported on the spot
    finally:
        pre.close()


# --- bench/trtexec_check.sh, with stand-ins for latbench's Python step and for trtexec ---------

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "trtexec_check.sh"
# trtexec's summary format (samples/common/sampleReporting.cpp, 10.x and 11.x).
TRTEXEC_OUT = (
    "&&&& RUNNING TensorRT.trtexec [TensorRT v110400] # trtexec --loadEngine=x\n"
    "[07/01/2026-10:00:00] [I] GPU Compute Time: min = 0.0121 ms, max = 0.0200 ms, mean = 0.0131 ms, "
    "median = 0.0130 ms, percentile(90%) = 0.0140 ms, percentile(95%) = 0.0141 ms, "
    "percentile(99%) = 0.0150 ms\n"
    "[07/01/2026-10:00:00] [I] Total GPU Compute Time: 2.99 s\n"
)

def _stand_ins(tmp_path, trt_major):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (tmp_path / "out.txt").write_text(TRTEXEC_OUT)
    python = bin_ / "python"
    python.write_text("#!/bin/sh\n[ \"$1\" = -c ] && exit 0\ncat >/dev/null\n"
                      f"echo '12.5 640 {trt_major} True'\n")
    trtexec = bin_ / "trtexec"
    trtexec.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args.txt\ncat {tmp_path}/out.txt\n")
    python.chmod(0o755)
    trtexec.chmod(0o755)
    return bin_, python


@pytest.mark.parametrize("trt_major", [10, 11])
def test_trtexec_check_reports_both_medians(tmp_path, trt_major):
    bin_, python = _stand_ins(tmp_path, trt_major)
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "PYTHON": str(python)}
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, check=True).stdout
    assert "latbench median       12.50 us" in out
    assert "trtexec median        13.00 us" in out and "1.040" in out
    args = (tmp_path / "args.txt").read_text()
    assert "--loadEngine=" in args
    assert ("--useCudaGraph --noDataTransfers --useSpinWait" in args) == (trt_major == 10)


@pytest.mark.skipif(shutil.which("trtexec", path="/usr/bin:/bin") is not None, reason="trtexec is installed")
def test_trtexec_check_without_trtexec_says_so():
    res = subprocess.run(["bash", str(SCRIPT)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert res.returncode == 2 and "trtexec is not on PATH" in res.stderr
