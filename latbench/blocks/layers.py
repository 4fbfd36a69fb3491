"""The torch modules block kinds are built from: conv + BN + activation, squeeze-excitation, and
the container that adds a block's residual.

Imported only by the kinds' `build` (lazily: the predictor and the table never need torch).
Training modules carry BatchNorm (eps 1e-3, as GPUNet released them); latbench.builders folds it
into the convolutions for inference.
"""

from __future__ import annotations

from torch import nn

from latbench.blocks.se import VARIANTS

BN_EPS = 1e-3
_ACTIVATIONS = {"relu": nn.ReLU, "swish": nn.SiLU, "hswish": nn.Hardswish, "sigmoid": nn.Sigmoid,
                "tanh": nn.Tanh, "gelu": nn.GELU, "relu6": nn.ReLU6, "hsigmoid": nn.Hardsigmoid}


def activation(name: str, channels: int) -> nn.Module:
    """The activation module for `name`; PReLU has one slope per channel."""
    return nn.PReLU(channels) if name == "prelu" else _ACTIVATIONS[name]()


class ConvBnAct(nn.Module):
    """Conv (no bias) + BatchNorm + optional activation; BN folding turns it into conv+bias+act."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0, groups=1, act: str | None = None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = activation(act, cout) if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Global mean -> 1x1 conv down -> activation -> 1x1 conv up -> gate -> multiply."""

    def __init__(self, channels: int, reduced: int, act: str, gate: str = "sigmoid"):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = activation(act, reduced)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = activation(gate, channels)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class ChannelShuffle(nn.Module):
    """Interleave the channels of `groups` groups (ShuffleNet), so that grouped convolutions mix."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class Block(nn.Module):
    """Any block: a body of modules applied in order, plus the residual when the spec has one."""

    def __init__(self, spec, body: list[nn.Module]):
        super().__init__()
        self.spec = spec
        self.body = nn.Sequential(*body)
        self.residual = spec.residual

    def forward(self, x):
        y = self.body(x)
        return y + x if self.residual else y

    def extra_repr(self) -> str:
        return self.spec.key


def squeeze_excite(spec, channels: int) -> SqueezeExcite:
    """The SE module of a block spec on a tensor of `channels` channels."""
    variant = VARIANTS[spec.se]
    return SqueezeExcite(channels, spec.se_channels, variant.act or spec.act, variant.gate)
