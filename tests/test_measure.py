"""The harness and the CPU backends on real blocks (small shapes, quick settings)."""

from __future__ import annotations

import platform

import pytest

from latbench import backends
from latbench.backends.base import COLD_FACTOR, BackendConfig, copies_needed, scrub_bytes
from latbench.errors import LatbenchError, TableError
from latbench.harness import HarnessSettings, measure
from latbench.spec import parse_key
from latbench.table import TableWriter
from latbench.arch import HeadSpec, StagedArch, StageSpec, TailSpec

QUICK = HarnessSettings.for_device("cpu", quick=True)
BLOCK = parse_key("irb-i16-o16-h16-w16-k3-s1-e4-swish-se1")


def tiny_net():
    return StagedArch(32, HeadSpec(8), (StageSpec.of(1, "irb", 16, 2, kernel=3, stride=2, expansion=4.0),), TailSpec(32, 10)).expand()


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
@pytest.mark.parametrize("target", ["block", "network"])
def test_backend_contract(name, target):
    """Every CPU backend prepares a block or a network once and times it repeatably."""
    be = backends.create(name, BackendConfig(device="cpu", threads=1))
    spec = BLOCK if target == "block" else tiny_net()
    with be.prepare(spec) as exe:
        m, extras = measure(exe, QUICK)
    assert m.median_us > 0 and m.p10_us <= m.median_us <= m.p90_us
    assert m.n >= QUICK.min_samples and m.unroll >= 1 and m.cov >= 0
    assert extras == {}  # no GPU monitor on the CPU
    assert be.identity()["name"] == name


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the heap is steadied on glibc only")
def test_cpu_backends_steady_the_heap_and_record_it(tmp_path):
    """mallopt fixed the thresholds (mallopt returns 1); the state is part of the table identity,
    so a table measured with the allocator left as is refuses to be resumed by this run."""
    be = backends.create("torch", BackendConfig(device="cpu", threads=1))
    heap = be.identity()["heap"]
    assert heap["allocator"] == "glibc" and heap["steady"] is True
    assert heap["mmap_threshold_bytes"] == 32 << 20
    meta = {"device": {"kind": "cpu", "name": "x"}, "backend": be.identity(), "precision": "fp32",
            "batch": 1, "protocol": "warm", "harness": QUICK.as_dict()}
    path = tmp_path / "t.jsonl"
    TableWriter(path, meta | {"backend": {k: v for k, v in be.identity().items() if k != "heap"}})
    with pytest.raises(TableError, match="backend.heap"):
        TableWriter(path, meta)


def test_bigger_block_takes_longer():
    be = backends.create("torch", BackendConfig(device="cpu", threads=1))
    small, big = parse_key("conv-i8-o8-h16-w16-k3-s1-relu"), parse_key("conv-i64-o64-h32-w32-k3-s1-relu")
    times = []
    for s in (small, big):
        with be.prepare(s) as exe:
            times.append(measure(exe, QUICK)[0].median_us)
    assert times[1] > 5 * times[0]  # 128x the MACs


def test_cold_protocol_cycles_weight_copies():
    assert copies_needed("warm", 1000, 100, 32 << 20, 1 << 30) == (1, 1)
    kw, ki = copies_needed("weights-cold", 1 << 20, 1 << 10, 32 << 20, 1 << 30)
    assert kw == 64 and ki == 1
    kw, ki = copies_needed("cold", 1 << 20, 1 << 20, 32 << 20, 1 << 30)
    assert kw == ki == 32
    # Copies capped below COLD_FACTOR x the cache need a scrub of that size between cycles.
    l2 = 60 << 20
    kw, _ = copies_needed("weights-cold", 4 << 10, 1 << 10, l2, 1 << 30)
    assert kw == 512 and scrub_bytes("weights-cold", kw * (4 << 10), l2) == COLD_FACTOR * l2
    kw, _ = copies_needed("weights-cold", 1 << 20, 1 << 10, l2, 1 << 30)
    assert scrub_bytes("weights-cold", kw * (1 << 20), l2) == 0
    assert scrub_bytes("warm", 1, l2) == 0
    be = backends.create("torch", BackendConfig(device="cpu", protocol="weights-cold", threads=1))
    with be.prepare(BLOCK) as exe:
        assert exe.info["copies"] > 1
        m, _ = measure(exe, QUICK)
    assert m.median_us > 0


def test_resolve_and_errors():
    if backends.cuda_available():
        assert backends.resolve("auto", None)[1] == "cuda"
    else:
        assert backends.resolve("auto", None)[:2] == ("torch", "cpu")
        with pytest.raises(LatbenchError, match="no CUDA GPU"):
            backends.resolve("auto", "cuda")
    with pytest.raises(LatbenchError, match="unknown backend 'tvm'"):
        backends.resolve("tvm", None)
    with pytest.raises(LatbenchError, match="fp16 is a GPU precision"):
        backends.create("torch", BackendConfig(device="cpu", precision="fp16"))
    with pytest.raises(LatbenchError, match="warm only"):
        backends.create("onnxruntime", BackendConfig(device="cpu", protocol="cold"))
    with pytest.raises(LatbenchError, match="cache protocol"):
        BackendConfig(protocol="lukewarm")


def test_unrolls_are_whole_cycles_of_the_copies():
    """An executable cycling K copies is only ever asked for multiples of K executions."""
    import numpy as np

    from latbench.harness import HostTimer, whole_cycles

    class Cycling:
        timer, min_unroll = HostTimer(), 7

        def __init__(self):
            self.asked, self.data = [], np.arange(2048, dtype=np.float64)

        def launcher(self, unroll):
            self.asked.append(unroll)

            def run():
                for _ in range(unroll):
                    self.data.sum()
            return run

    exe = Cycling()
    m, _ = measure(exe, QUICK)
    assert exe.asked and all(u % 7 == 0 for u in exe.asked) and m.unroll % 7 == 0
    assert whole_cycles(1, 7) == 7 and whole_cycles(14, 7) == 14 and whole_cycles(15, 7) == 21
    assert whole_cycles(5, 1) == 5


def test_fp32_means_ieee_through_both_torch_apis():
    """The flags exist in CPU builds too: after strict_fp32 the current API says ieee and the
    legacy flags read False instead of raising (torch refuses to read them once the two APIs
    disagree)."""
    import torch

    from latbench.backends.torch_backend import strict_fp32

    strict_fp32(torch)
    if hasattr(torch.backends.cudnn, "fp32_precision"):
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cuda.matmul.allow_tf32 is False


def test_weight_copies_share_one_buffer_and_keep_the_weights():
    """K copies in one allocation, each an exact copy, channels_last strides kept."""
    import torch

    from latbench.backends.torch_backend import WeightCopies
    from latbench.builders import example_input
    from latbench.builders import inference_model

    spec = parse_key("irb-i16-o16-h8-w8-k3-s1-e4-prelu-se1")
    model = inference_model(spec).to(memory_format=torch.channels_last)
    x = example_input(spec)
    with torch.inference_mode():
        want = model(x).clone()
    copies = WeightCopies(model, 5)
    pointers = set()
    for k in range(5):
        copies.bind(k)
        pointers.add(next(model.parameters()).data_ptr())
        with torch.inference_mode():
            assert torch.equal(model(x), want)
    assert len(pointers) == 5 and copies.buffer.shape[0] == 5
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.ndim == 4)


class _FailingNvml:
    """NVML whose queries fail after initialisation (a driver hiccup mid-build)."""

    NVML_CLOCK_SM, NVML_TEMPERATURE_GPU = 1, 0

    def nvmlDeviceGetHandleByIndex(self, i):
        return object()

    def nvmlDeviceGetMaxClockInfo(self, h, clock):
        return 1980

    def nvmlDeviceGetClockInfo(self, *args):
        raise RuntimeError("NVML_ERROR_GPU_IS_LOST")

    nvmlDeviceGetCurrentClocksEventReasons = nvmlDeviceGetTemperature = nvmlDeviceGetClockInfo


def test_nvml_errors_flag_the_row_and_warn_once(monkeypatch, capsys):
    from latbench import nvml

    monkeypatch.setattr(nvml, "_nvml", lambda: _FailingNvml())
    mon = nvml.GpuMonitor()
    assert mon.available and mon.max_sm_clock_mhz == 1980
    rows = [mon.summarize(mon.snapshot(), mon.snapshot()) for _ in range(3)]
    assert all(r["nvml_error"].startswith("RuntimeError: NVML_ERROR_GPU_IS_LOST") and r["throttled"] is None
               for r in rows)
    assert capsys.readouterr().err.count("warning: NVML failed") == 1
