"""Inverted residuals: `irb` (MBConv: 1x1 expand, k x k depthwise, [SE], 1x1 project), `fused_irb`
(Fused-MBConv: one k x k conv expands, [SE], 1x1 project) as GPUNet released them, and `er`
(timm's EdgeResidual, EfficientNetV2's Fused-MBConv: `fused_irb` with symmetric padding).

hidden = make_divisible(in x expansion, 8). Activation after every conv but the projection.
Residual when stride 1 and in == out (the `noskip` token drops it).
"""

from __future__ import annotations

from latbench.blocks import se as se_variants
from latbench.blocks.base import BlockKind
from latbench.cost import conv_bn, fused_padding, make_divisible, residual_traffic


class InvertedResidual(BlockKind):
    name = "irb"
    tokens = ("e", "act", "se", "skip")
    space_fields = ("filters", "kernel", "expansion", "se", "act")
    se_allowed = (0, 1, 2)
    skippable = True
    #: Fused: one k x k conv replaces the 1x1 expansion and the depthwise conv.
    fused = False

    def costs(self, cin, cout, h, w, kernel, stride, expansion, se, act_prelu, classes, skip, groups, bias):
        ho, wo = self.out_size(h, kernel, stride), self.out_size(w, kernel, stride)
        hidden = make_divisible(cin * expansion)
        sq = se_variants.costs(se, hidden, expansion, act_prelu, ho, wo)
        _, proj_params, proj_folded = conv_bn(hidden, cout, 1)
        if self.fused:
            expand, exp_params, exp_folded = conv_bn(cin, hidden, kernel)
            macs = expand * ho * wo
            params, folded = exp_params + proj_params, exp_folded + proj_folded
            internal = 2 * hidden * ho * wo
            slopes = act_prelu * hidden
        else:
            expand, exp_params, exp_folded = conv_bn(cin, hidden, 1)
            dw, dw_params, dw_folded = conv_bn(hidden, hidden, kernel, groups=hidden)
            macs = expand * h * w + dw * ho * wo
            params, folded = exp_params + dw_params + proj_params, exp_folded + dw_folded + proj_folded
            internal = 2 * hidden * h * w + 2 * hidden * ho * wo
            slopes = act_prelu * 2 * hidden
        out_elems = cout * ho * wo
        extra_in, extra_internal = residual_traffic(skip, cin * h * w, out_elems)
        return {"out_h": ho, "out_w": wo, "hidden": hidden, "se_channels": sq["se_channels"],
                "macs": macs + hidden * cout * ho * wo + sq["macs"],
                "params": params + slopes + sq["params"], "folded_params": folded + slopes + sq["params"],
                "in_elems": cin * h * w + extra_in, "out_elems": out_elems,
                "internal_elems": internal + sq["internal"] + extra_internal}

    def build(self, spec) -> list:
        from latbench.blocks.layers import ConvBnAct, squeeze_excite  # torch, only when built

        k, s, p, act, hid = spec.kernel, spec.stride, spec.padding, spec.act, spec.hidden
        if self.fused:
            body = [ConvBnAct(spec.in_channels, hid, k, s, p, act=act)]
        else:
            body = [ConvBnAct(spec.in_channels, hid, 1, act=act), ConvBnAct(hid, hid, k, s, p, groups=hid, act=act)]
        if spec.se:
            body.append(squeeze_excite(spec, hid))
        return body + [ConvBnAct(hid, spec.out_channels, 1)]


class FusedInvertedResidual(InvertedResidual):
    name = "fused_irb"
    fused = True

    def padding(self, kernel, stride):
        return fused_padding(kernel, stride)


class EdgeResidual(InvertedResidual):
    """The fused block as timm and EfficientNetV2 build it: the k x k expansion conv pads
    symmetrically at every stride (GPUNet's released builder pads a stride-2 one with 0)."""

    name = "er"
    fused = True
