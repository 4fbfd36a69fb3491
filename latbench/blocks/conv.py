"""Plain convolution blocks: `head` (the network's stem, GPUNet stage 0) and `conv` (GPUNet's
stage-1 layers; timm's ConvBnAct): conv k x k (stride) + BN + activation.

A `conv` block has no residual unless asked (`skip` token: EfficientNetV2's `cn_..._skip`).
"""

from __future__ import annotations

from latbench.blocks.base import BlockKind
from latbench.cost import conv_bn, residual_traffic


class Conv(BlockKind):
    name = "conv"
    tokens = ("act", "skip")
    skippable, skip_by_default = True, False

    def costs(self, cin, cout, h, w, kernel, stride, expansion, se, act_prelu, classes, skip, groups, bias):
        ho, wo = self.out_size(h, kernel, stride), self.out_size(w, kernel, stride)
        weights, params, folded = conv_bn(cin, cout, kernel)
        out_elems = cout * ho * wo
        extra_in, extra_internal = residual_traffic(skip, cin * h * w, out_elems)
        return {"out_h": ho, "out_w": wo, "hidden": cout + 0 * cin, "se_channels": 0 * cin,
                "macs": weights * ho * wo, "params": params + act_prelu * cout,
                "folded_params": folded + act_prelu * cout, "in_elems": cin * h * w + extra_in,
                "out_elems": out_elems, "internal_elems": out_elems + extra_internal}

    def build(self, spec) -> list:
        from latbench.blocks.layers import ConvBnAct  # torch, only when a module is built

        return [ConvBnAct(spec.in_channels, spec.out_channels, spec.kernel, spec.stride, spec.padding,
                          act=spec.act)]


class Head(Conv):
    """The stem: the first block of a network, reading the image."""

    name = "head"
    tokens = ("act",)
    role = "stem"
    skippable = False
