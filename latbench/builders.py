"""Torch modules for block specs and whole networks, after NVIDIA's released GPUNet builder.

Training modules carry BatchNorm (eps 1e-3, as released); `fold_bn` returns the inference form in
which every BN is folded into the preceding convolution's bias, as TensorRT, ONNX Runtime and a
fused PyTorch module run it. Latency blocks are therefore conv + bias + activation.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from latbench.arch import Arch
from latbench.spec import BlockSpec

BN_EPS = 1e-3
TAIL_DROPOUT = 0.2


def activation(name: str, channels: int) -> nn.Module:
    """The activation module for `name`; PReLU has one slope per channel."""
    if name == "prelu":
        return nn.PReLU(channels)
    return {
        "relu": nn.ReLU, "swish": nn.SiLU, "hswish": nn.Hardswish, "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh, "gelu": nn.GELU,
    }[name]()


class ConvBnAct(nn.Module):
    """Conv (no bias) + BatchNorm + optional activation; `fold_bn` turns it into conv+bias+act."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0, groups=1, act: str | None = None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = activation(act, cout) if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Global mean -> 1x1 conv down -> block activation -> 1x1 conv up -> sigmoid -> multiply."""

    def __init__(self, channels: int, reduced: int, act: str):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = activation(act, reduced)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class Block(nn.Module):
    """Any block: a body of modules applied in order, plus the residual when the spec has one."""

    def __init__(self, spec: BlockSpec, body: list[nn.Module]):
        super().__init__()
        self.spec = spec
        self.body = nn.Sequential(*body)
        self.residual = spec.residual

    def forward(self, x):
        y = self.body(x)
        return y + x if self.residual else y

    def extra_repr(self) -> str:
        return self.spec.key


def build_block(spec: BlockSpec) -> Block:
    """A training-form module (with BatchNorm) computing exactly `spec`."""
    k, s, p, act = spec.kernel, spec.stride, spec.padding, spec.act
    if spec.kind in ("head", "conv"):
        body = [ConvBnAct(spec.in_channels, spec.out_channels, k, s, p, act=act)]
    elif spec.kind == "tail":
        body = [
            ConvBnAct(spec.in_channels, spec.out_channels, 1, act=act),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(TAIL_DROPOUT),
            nn.Linear(spec.out_channels, spec.classes),
        ]
    else:
        hid = spec.hidden
        if spec.kind == "irb":
            body = [
                ConvBnAct(spec.in_channels, hid, 1, act=act),
                ConvBnAct(hid, hid, k, s, p, groups=hid, act=act),
            ]
        else:  # fused_irb: one full kxk conv replaces expand + depthwise
            body = [ConvBnAct(spec.in_channels, hid, k, s, p, act=act)]
        if spec.se:
            body.append(SqueezeExcite(hid, spec.se_channels, act))
        body.append(ConvBnAct(hid, spec.out_channels, 1))
    return Block(spec, body)


def build_network(arch: Arch) -> nn.Sequential:
    """The whole network as a Sequential of blocks (training form)."""
    return nn.Sequential(*(build_block(b) for b in arch.blocks))


def fold_bn(module: nn.Module) -> nn.Module:
    """A copy in eval mode with every ConvBnAct's BN folded into its conv (bias added)."""
    folded = copy.deepcopy(module).eval()
    for m in folded.modules():
        if isinstance(m, ConvBnAct) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv = fuse_conv_bn_eval(m.conv, m.bn)
            m.bn = nn.Identity()
    return folded


def randomize_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN non-trivial statistics (in place), so folding is tested on real numbers."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return module


def example_input(spec_or_arch, batch: int = 1, device="cpu", dtype=torch.float32,
                  channels_last: bool = True, seed: int = 0) -> torch.Tensor:
    """A random input of the block's (or network's) shape [batch, C, H, W]."""
    first = spec_or_arch.blocks[0] if isinstance(spec_or_arch, Arch) else spec_or_arch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, first.in_channels, first.height, first.width, generator=g)
    x = x.to(device=device, dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
