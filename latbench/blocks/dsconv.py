"""`dsconv`: the depthwise-separable block of MobileNet and EfficientNet stems (timm's
DepthwiseSeparableConv): depthwise k x k (stride) + BN + activation, optional squeeze-excitation
on the input channels, pointwise 1x1 + BN (no activation); a residual when stride is 1 and the
channels are kept (the `noskip` token drops it).
"""

from __future__ import annotations

from latbench.blocks import se as se_variants
from latbench.blocks.base import BlockKind
from latbench.cost import conv_bn, residual_traffic


class DepthwiseSeparable(BlockKind):
    name = "dsconv"
    tokens = ("act", "se", "skip")
    space_fields = ("filters", "kernel", "se", "act")
    se_allowed = (0, 1, 2)
    skippable = True

    def costs(self, cin, cout, h, w, kernel, stride, expansion, se, act_prelu, classes, skip, groups, bias):
        ho, wo = self.out_size(h, kernel, stride), self.out_size(w, kernel, stride)
        dw, dw_params, dw_folded = conv_bn(cin, cin, kernel, groups=cin)
        pw, pw_params, pw_folded = conv_bn(cin, cout, 1)
        sq = se_variants.costs(se, cin, 1.0, act_prelu, ho, wo)  # SE on the input channels
        out_elems = cout * ho * wo
        extra_in, extra_internal = residual_traffic(skip, cin * h * w, out_elems)
        slopes = act_prelu * cin
        return {"out_h": ho, "out_w": wo, "hidden": cin + 0 * cout, "se_channels": sq["se_channels"],
                "macs": (dw + pw) * ho * wo + sq["macs"],
                "params": dw_params + pw_params + slopes + sq["params"],
                "folded_params": dw_folded + pw_folded + slopes + sq["params"],
                "in_elems": cin * h * w + extra_in, "out_elems": out_elems,
                "internal_elems": 2 * cin * ho * wo + sq["internal"] + extra_internal}

    def build(self, spec) -> list:
        from latbench.blocks.layers import ConvBnAct, squeeze_excite  # torch, only when built

        cin = spec.in_channels
        body = [ConvBnAct(cin, cin, spec.kernel, spec.stride, spec.padding, groups=cin, act=spec.act)]
        if spec.se:
            body.append(squeeze_excite(spec, cin))
        return body + [ConvBnAct(cin, spec.out_channels, 1)]
