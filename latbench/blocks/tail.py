"""`tail`: the classifier of GPUNet and EfficientNet: 1x1 conv to `out_channels` + BN +
activation, global average pool, dropout, linear to `classes` logits."""

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

    def costs(self, cin, cout, h, w, kernel, stride, expansion, se, act_prelu, classes, skip, groups):
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
