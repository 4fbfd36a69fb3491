"""The torch CUDA-graph path on a real GPU: capture, cycling of weight copies, timing.

Skipped (with the reason) unless torch sees a CUDA GPU. The GPU session runner executes these
(`pytest -m gpu tests/gpu`) and archives their output.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU visible to torch", allow_module_level=True)

from latbench import backends  # noqa: E402
from latbench.backends.base import BackendConfig  # noqa: E402
from latbench.builders import example_input  # noqa: E402
from latbench.harness import HarnessSettings, measure  # noqa: E402
from latbench.builders import inference_model  # noqa: E402
from latbench.spec import parse_key  # noqa: E402

QUICK = HarnessSettings.for_device("cuda", quick=True)
SMALL = parse_key("irb-i32-o32-h28-w28-k3-s1-e4-swish-se1")
#: 237 GFLOP: some 0.3-0.5 ms on an H100/H200 in fp16, long enough to compare with eager calls.
LARGE = parse_key("conv-i256-o256-h448-w448-k3-s1-relu")


def backend(protocol: str = "warm", precision: str = "fp16"):
    return backends.create("torch", BackendConfig(device="cuda", precision=precision, protocol=protocol))


def eager_output(spec, precision_dtype=torch.float16):
    model = inference_model(spec).to(device="cuda", dtype=precision_dtype).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        return model(example_input(spec, 1, "cuda", precision_dtype))


def test_graph_replay_computes_what_eager_computes():
    with backend().prepare(SMALL) as exe:
        exe.launcher(16)()
        torch.cuda.synchronize()
        got = exe.outputs[16].float()
    want = eager_output(SMALL).float()
    assert torch.allclose(got, want, rtol=1e-2, atol=1e-2), (got - want).abs().max()


def test_weights_cold_cycles_distinct_copies_of_the_same_weights():
    with backend("weights-cold").prepare(SMALL) as exe:
        k = exe.info["copies"]
        assert k > 1 and exe.min_unroll == k
        pointers = set()
        for i in range(k):
            exe.weights.bind(i)
            pointers.add(exe.weights.params[0].data_ptr())
            assert all(p.data_ptr() % 256 == 0 for p in exe.weights.params)
        assert len(pointers) == k  # every copy lives elsewhere in memory
        exe.weights.bind(0)
        m, _ = measure(exe, QUICK)
        assert m.unroll % k == 0 and m.median_us > 0
        exe.launcher(m.unroll)()
        torch.cuda.synchronize()
        got = exe.outputs[m.unroll].float()
    want = eager_output(SMALL).float()
    assert torch.allclose(got, want, rtol=1e-2, atol=1e-2)  # the last copy holds the same weights


def test_copies_too_few_to_flush_the_l2_are_scrubbed_and_the_scrub_subtracted():
    """A block of a few KB of weights: 512 copies hold far less than the L2, so each cycle ends
    with a read of twice the L2, timed alone and subtracted. Cold weights cost the block at least
    as much as warm ones, and the scrub (~2 x L2 / HBM bandwidth) far less than a cycle."""
    tiny = parse_key("conv-i16-o16-h28-w28-k3-s1-relu")
    with backend("weights-cold").prepare(tiny) as exe:
        info = exe.info
        assert info["scrub_bytes"] > info["cold_bytes"] and 0 < info["scrub_us"] < 1000, info
        cold, _ = measure(exe, QUICK)
    with backend("warm").prepare(tiny) as exe:
        assert "scrub_bytes" not in exe.info
        warm, _ = measure(exe, QUICK)
    print(f"tiny conv: warm {warm.median_us:.2f} us, weights-cold {cold.median_us:.2f} us, "
          f"scrub {info['scrub_us']:.1f} us per {info['copies']} copies")
    assert cold.median_us > 0.9 * warm.median_us


def test_graph_timing_matches_an_eager_event_loop_on_a_large_block():
    with backend().prepare(LARGE) as exe:
        ours = measure(exe, HarnessSettings.for_device("cuda"))[0].median_us
    model = inference_model(LARGE).to(device="cuda", dtype=torch.float16).to(memory_format=torch.channels_last)
    x = example_input(LARGE, 1, "cuda", torch.float16)
    times = []
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        for _ in range(7):
            # The GPU spins while the host queues every call, so the events time GPU work, not
            # the host's launches (eager PyTorch at batch 1 is otherwise launch-bound).
            torch.cuda._sleep(100_000_000)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(20):
                model(x)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1000 / 20)
    eager = sorted(times)[len(times) // 2]
    # 8 %: the graph's samples run back to back, each eager window after a 100 ms spin, and an
    # H200 near its power limit clocks the two a few percent apart.
    assert abs(ours / eager - 1) < 0.08, (ours, eager)


def test_fp32_is_ieee_and_the_legacy_flags_still_read():
    backend(precision="fp32")
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cuda.matmul.allow_tf32 is False


def test_cudnn_choice_is_recorded_and_applied():
    be = backends.create("torch", BackendConfig(device="cuda", precision="fp16",
                                                options={"cudnn_benchmark": True}))
    assert torch.backends.cudnn.benchmark is True and be.identity()["cudnn_benchmark"] is True
    be = backend()
    assert torch.backends.cudnn.benchmark is False and be.identity()["cudnn_benchmark"] is False
