"""Classifiers: `tail` (GPUNet and EfficientNet: 1x1 conv to `out_channels` + BN + activation,
global average pool, dropout, linear to `classes` logits) and `pooltail` (MobileNetV3 and
Once-for-All: global average pool first, then a 1x1 conv with a bias (`nobias`: without) and no
BN, activation, dropout, linear)."""

from __future__ import annotations

from latbench.blocks.base import BlockKind
from latbench.cost import conv_bn
from latbench.errors import SpecError

DROPOUT = 0.2


class Tail(BlockKind):
    name = "tail"
    tokens = ("act", "c")
    role = "classifier"
    space_fields = ()

    def check_args(self, a) -> None:
        super().check_args(a)
        if a.kernel != 1 or a.stride != 1:
            raise SpecError(f"{self.name}: kernel and stride are fixed at 1")

    def out_size(self, size, kernel, stride):
        return 1 + 0 * size

    def costs(self, cin, cout, h, w, kernel, stride, expansion, se, act_prelu, classes, skip, groups, bias):
        conv, params, folded = conv_bn(cin, cout, 1)
        linear = cout * classes + classes
        return {"out_h": 1 + 0 * h, "out_w": 1 + 0 * w, "hidden": cout + 0 * cin, "se_channels": 0 * cin,
                "macs": conv * h * w + cout * classes, "params": params + act_prelu * cout + linear,
                "folded_params": folded + act_prelu * cout + linear, "in_elems": cin * h * w,
                "out_elems": classes + 0 * cin,
                "internal_elems": 2 * cout * h * w + cout}  # conv out, act out, pooled vector

    def build(self, spec) -> list:
        from torch import nn  # torch, only when built

        from latbench.blocks.layers import ConvBnAct

        return [ConvBnAct(spec.in_channels, spec.out_channels, 1, act=spec.act), nn.AdaptiveAvgPool2d(1),
                nn.Flatten(), nn.Dropout(DROPOUT), nn.Linear(spec.out_channels, spec.classes)]


class PoolTail(Tail):
    name = "pooltail"
    tokens = ("act", "c", "bias")

    def costs(self, cin, cout, h, w, kernel, stride, expansion, se, act_prelu, classes, skip, groups, bias):
        conv = cin * cout + bias * cout
        linear = cout * classes + classes
        params = conv + act_prelu * cout + linear  # no BN: the same before and after folding
        return {"out_h": 1 + 0 * h, "out_w": 1 + 0 * w, "hidden": cout + 0 * cin, "se_channels": 0 * cin,
                "macs": cin * cout + cout * classes, "params": params, "folded_params": params,
                "in_elems": cin * h * w, "out_elems": classes + 0 * cin,
                "internal_elems": cin + 2 * cout}  # pooled vector, conv out, act out

    def build(self, spec) -> list:
        from torch import nn  # torch, only when built

        from latbench.blocks.layers import activation

        return [nn.AdaptiveAvgPool2d(1), nn.Conv2d(spec.in_channels, spec.out_channels, 1, bias=spec.bias),
                activation(spec.act, spec.out_channels), nn.Flatten(), nn.Dropout(DROPOUT),
                nn.Linear(spec.out_channels, spec.classes)]
