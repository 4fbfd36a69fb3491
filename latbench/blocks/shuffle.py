"""`shuffle_irb`: FBNet's inverted residual with grouped pointwise convolutions (HW-NAS-Bench's
ConvBlock, Facebook's IRFBlock): 1x1 conv with `groups` (kept even at expansion 1) + BN + act,
a channel shuffle when groups > 1, k x k depthwise + BN + act, 1x1 conv with `groups` + BN;
a residual when stride is 1 and the channels are kept. No SE.
"""

from __future__ import annotations

from latbench.blocks.base import BlockKind
from latbench.cost import conv_bn, make_divisible, residual_traffic
from latbench.errors import SpecError


class ShuffleInvertedResidual(BlockKind):
    name = "shuffle_irb"
    tokens = ("e", "act", "skip", "g")
    space_fields = ("filters", "kernel", "expansion", "act", "groups")
    skippable = True

    def check_args(self, a) -> None:
        super().check_args(a)
        if a.out_channels % a.groups:
            raise SpecError(f"{self.name}: out_channels {a.out_channels} must divide into {a.groups} groups")

    def check_shape(self, s) -> None:
        super().check_shape(s)
        if s.in_channels % s.groups or s.hidden % s.groups:
            raise SpecError(f"{self.name}: in_channels {s.in_channels} and hidden {s.hidden} must divide into "
                            f"{s.groups} groups")

    def costs(self, cin, cout, h, w, kernel, stride, expansion, se, act_prelu, classes, skip, groups, bias):
        ho, wo = self.out_size(h, kernel, stride), self.out_size(w, kernel, stride)
        hidden = make_divisible(cin * expansion)
        expand, exp_params, exp_folded = conv_bn(cin, hidden, 1, groups)
        dw, dw_params, dw_folded = conv_bn(hidden, hidden, kernel, groups=hidden)
        proj, proj_params, proj_folded = conv_bn(hidden, cout, 1, groups)
        slopes = act_prelu * 2 * hidden
        shuffled = (groups > 1) * hidden * h * w  # the shuffle copies the expanded tensor once
        out_elems = cout * ho * wo
        extra_in, extra_internal = residual_traffic(skip, cin * h * w, out_elems)
        return {"out_h": ho, "out_w": wo, "hidden": hidden, "se_channels": 0 * cin,
                "macs": expand * h * w + dw * ho * wo + proj * ho * wo,
                "params": exp_params + dw_params + proj_params + slopes,
                "folded_params": exp_folded + dw_folded + proj_folded + slopes,
                "in_elems": cin * h * w + extra_in, "out_elems": out_elems,
                "internal_elems": 2 * hidden * h * w + shuffled + 2 * hidden * ho * wo + extra_internal}

    def build(self, spec) -> list:
        from latbench.blocks.layers import ChannelShuffle, ConvBnAct  # torch, only when built

        g, hid = spec.groups, spec.hidden
        body = [ConvBnAct(spec.in_channels, hid, 1, groups=g, act=spec.act)]
        if g > 1:
            body.append(ChannelShuffle(g))
        return body + [ConvBnAct(hid, hid, spec.kernel, spec.stride, spec.padding, groups=hid, act=spec.act),
                       ConvBnAct(hid, spec.out_channels, 1, groups=g)]
