"""TensorRT backend on a real GPU: build, capture and time one block and one small network.

Skipped (with the reason) unless `tensorrt` imports and torch sees a CUDA GPU.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]

torch = pytest.importorskip("torch")
trt = pytest.importorskip("tensorrt", reason="needs TensorRT (pip install latbench[trt])")
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU visible to torch", allow_module_level=True)

from latbench import HeadSpec, StagedArch, StageSpec, TailSpec  # noqa: E402
from latbench.backends import BackendConfig, create  # noqa: E402
from latbench.backends.tensorrt_backend import timing_cache_path  # noqa: E402
from latbench.harness import HarnessSettings, measure  # noqa: E402
from latbench.spec import BlockSpec  # noqa: E402

BLOCK = BlockSpec(kind="irb", in_channels=64, out_channels=64, height=28, width=28, kernel=3, stride=1, expansion=4, se=True, act="swish")
#: About 1.7 MB of fp16 weights: a few dozen copies flush a 50-60 MB L2 twice.
BIG_BLOCK = BlockSpec(kind="irb", in_channels=256, out_channels=256, height=14, width=14, kernel=5, stride=1, expansion=6, se=False, act="relu")
NET = StagedArch(64, HeadSpec(16), (StageSpec.of(1, "conv", 16, 1), StageSpec.of(2, "irb", 24, 2, stride=2, expansion=4)),
                 TailSpec(64, 10), name="tiny").expand()
SETTINGS = HarnessSettings.for_device("cuda", quick=True)


def backend(precision="fp16", protocol="warm"):
    return create("tensorrt", BackendConfig(device="cuda", precision=precision, protocol=protocol))


def test_block_fp16_builds_times_and_keeps_fp16_io(tmp_path):
    be = backend()
    table = tmp_path / "t.jsonl"
    be.attach_table(table)
    with be.prepare(BLOCK) as exe:
        m, _ = measure(exe, SETTINGS)
        assert m.median_us > 0
        assert {b.dtype for bufs in exe.buffers.values() for b in bufs} == {torch.float16}
        assert exe.info["engine_layers"] and isinstance(exe.info["reformat_at_io"], bool)
        assert exe.info["trt_version"] == trt.__version__ and exe.info["build_s"] > 0
        assert len(exe.plan) > 0
    assert timing_cache_path(table).stat().st_size > 0  # saved after the build
    be.close()


def test_small_network_times_whole():
    be = backend()
    with be.prepare(NET) as exe:
        m, _ = measure(exe, SETTINGS)
        assert m.median_us > 0
        assert exe.info["copies"] == 1
    be.close()


def test_weights_cold_cycles_engine_copies():
    be = backend(protocol="weights-cold")
    with be.prepare(BIG_BLOCK) as exe:
        assert exe.info["copies"] > 1 and exe.min_unroll == exe.info["copies"]
        assert exe.info["input_copies"] == 1
        m, _ = measure(exe, SETTINGS)
        assert m.median_us > 0 and m.unroll % exe.min_unroll == 0
    be.close()


def test_prefetched_export_is_used():
    be = backend(precision="fp32")
    be.prefetch([BLOCK])
    with be.prepare(BLOCK) as exe:
        assert exe.info["export_prefetched"] is True
        assert {b.dtype for bufs in exe.buffers.values() for b in bufs} == {torch.float32}
    be.close()
