"""The depthwise-separable block kind (`dsconv`), added as one module plus its registration:
keys, validation, analytic costs against real torch modules, and every command that handles
blocks (arch show, predict, build-table, export) taking it without any other change."""

from __future__ import annotations

import json

import pytest
import torch

from latbench import StagedArch, StageSpec, parse_key
from latbench.arch import HeadSpec, TailSpec
from latbench.arch_io import arch_to_json
from latbench.blocks import BlockSpec
from latbench.builders import build_block, example_input, fold_bn, randomize_bn
from latbench.errors import SpecError

SPECS = [
    BlockSpec(kind="dsconv", in_channels=32, out_channels=16, height=28, width=28, kernel=3, act="swish", se=1),
    BlockSpec(kind="dsconv", in_channels=16, out_channels=16, height=14, width=14, kernel=5, act="relu"),
    BlockSpec(kind="dsconv", in_channels=16, out_channels=16, height=14, width=14, act="hswish", se=2, skip=False),
    BlockSpec(kind="dsconv", in_channels=24, out_channels=40, height=15, width=15, kernel=7, stride=2, act="prelu", se=1),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_keys_round_trip_and_costs_match_the_built_module(spec):
    assert parse_key(spec.key) == spec
    torch.manual_seed(0)
    module = randomize_bn(build_block(spec)).eval()
    assert sum(p.numel() for p in module.parameters()) == spec.params
    x = example_input(spec, batch=2, channels_last=False)
    with torch.no_grad():
        y = module(x)
        folded = fold_bn(module)
        torch.testing.assert_close(folded(x), y, rtol=1e-4, atol=1e-5)
    assert tuple(y.shape) == (2, spec.out_channels, spec.out_height, spec.out_width)
    assert sum(p.numel() for p in folded.parameters()) == spec.folded_params


def test_residual_rule_and_its_token():
    keep = BlockSpec(kind="dsconv", in_channels=16, out_channels=16, height=8, width=8)
    drop = BlockSpec(kind="dsconv", in_channels=16, out_channels=16, height=8, width=8, skip=False)
    assert keep.residual and not drop.residual
    assert keep.key == "dsconv-i16-o16-h8-w8-k3-s1-relu-se0" and drop.key.endswith("-se0-noskip")
    assert not BlockSpec(kind="dsconv", in_channels=16, out_channels=24, height=8, width=8).residual
    with pytest.raises(SpecError, match="residual needs stride 1"):
        BlockSpec(kind="dsconv", in_channels=16, out_channels=24, height=8, width=8, skip=True)
    with pytest.raises(SpecError, match="takes no expansion"):
        BlockSpec(kind="dsconv", in_channels=16, out_channels=16, height=8, width=8, expansion=4)
    # SE width: 1 = about in / 4 (GPUNet/EfficientNet rule), 2 = make_divisible(in / 4, 8) (MobileNetV3)
    assert SPECS[0].se_channels == 8 and SPECS[2].se_channels == 8


def mobile_net() -> StagedArch:
    """A small MobileNet-like network: dsconv stages between a stem and a classifier."""
    return StagedArch(64, HeadSpec(16, act="hswish"), (
        StageSpec.of(1, "dsconv", 16, 1, act="relu", se=2),
        StageSpec.of(2, "dsconv", 24, 2, stride=2, kernel=5, act="hswish", se=1),
        StageSpec.of(3, "irb", 32, 1, stride=2, expansion=4, act="swish"),
    ), TailSpec(128, classes=10), name="mobile")


def test_commands_take_the_new_kind(run_cli, tmp_path):
    arch = tmp_path / "mobile.json"
    arch.write_text(json.dumps(arch_to_json(mobile_net().expand())))
    code, out, err = run_cli("arch", "show", str(arch), "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert [s["block"] for s in shown["stages"]][1:3] == ["dsconv", "dsconv"]
    assert shown["params"] == mobile_net().expand().params
    table = tmp_path / "t.jsonl"
    code, out, err = run_cli("build-table", "--device", "cpu", "--archs", str(arch), "--quick", "--out", str(table),
                             "--json")
    assert code == 0, err
    built = json.loads(out)
    assert built["failed"] == 0 and built["measured"] == len(set(mobile_net().expand().keys))
    code, out, err = run_cli("predict", str(arch), "--table", str(table), "--json")
    assert code == 0, err
    pred = json.loads(out)
    assert pred["coverage"] == 1.0 and pred["latency_ms"] > 0
    assert any(b["key"].startswith("dsconv-") for b in pred["blocks"])
    code, out, err = run_cli("export", SPECS[0].key, "--onnx", str(tmp_path / "b.onnx"), "--json")
    assert code == 0 and json.loads(out)["onnxruntime_max_abs_error"] < 1e-3, err
