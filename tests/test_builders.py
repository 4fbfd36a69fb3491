"""Torch builders follow the released semantics; analytic parameters match real modules."""

from __future__ import annotations

import pytest
import torch

from latbench import load_arch
from latbench.builders import build_block, build_network, example_input, fold_bn, randomize_bn
from latbench.spec import ACTIVATIONS, BlockSpec

BLOCKS = [
    BlockSpec(kind="head", in_channels=3, out_channels=32, height=64, width=64, kernel=3, stride=2, act="swish"),
    BlockSpec(kind="conv", in_channels=32, out_channels=32, height=32, width=32, kernel=5, stride=1, act="relu"),
    BlockSpec(kind="fused_irb", in_channels=32, out_channels=48, height=32, width=32, kernel=5, stride=2, expansion=4, se=True, act="swish"),
    BlockSpec(kind="fused_irb", in_channels=48, out_channels=48, height=14, width=14, kernel=3, stride=1, expansion=3, se=False, act="relu"),
    BlockSpec(kind="irb", in_channels=48, out_channels=64, height=14, width=14, kernel=5, stride=2, expansion=7.67, se=True, act="hswish"),
    BlockSpec(kind="irb", in_channels=64, out_channels=64, height=7, width=7, kernel=3, stride=1, expansion=6, se=True, act="prelu"),
    BlockSpec(kind="tail", in_channels=64, out_channels=128, height=7, width=7, kernel=1, stride=1, classes=10),
]


@pytest.mark.parametrize("spec", BLOCKS, ids=lambda s: s.key)
def test_block_shapes_params_and_folding(spec):
    torch.manual_seed(0)
    m = randomize_bn(build_block(spec)).eval()
    assert sum(p.numel() for p in m.parameters()) == spec.params
    x = example_input(spec, batch=2, channels_last=False)
    with torch.no_grad():
        y = m(x)
        folded = fold_bn(m)
        y2 = folded(x)
    expected = (2, spec.classes) if spec.kind == "tail" else (2, spec.out_channels, spec.out_height, spec.out_width)
    assert tuple(y.shape) == expected
    assert sum(p.numel() for p in folded.parameters()) == spec.folded_params
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in folded.modules())
    torch.testing.assert_close(y2, y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_every_activation_builds(act):
    spec = BlockSpec(kind="irb", in_channels=16, out_channels=16, height=8, width=8, kernel=3, stride=1, expansion=2, se=True, act=act)
    assert sum(p.numel() for p in build_block(spec).parameters()) == spec.params


def test_gpunet_networks_match_released_parameter_counts():
    # Released GPUNet-0/1/2 have 11.9 M, 12.7 M and 25.8 M parameters (NVIDIA's model card).
    for name, millions in (("gpunet-0", 11.9), ("gpunet-1", 12.7), ("gpunet-2", 25.8)):
        arch = load_arch(name)
        net = build_network(arch)
        n = sum(p.numel() for p in net.parameters())
        assert n == arch.params
        assert round(n / 1e6, 1) == millions
    x = example_input(load_arch("gpunet-1"), channels_last=False)
    with torch.no_grad():
        assert build_network(load_arch("gpunet-1")).eval()(x).shape == (1, 1000)
