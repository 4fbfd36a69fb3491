"""Torch modules for block specs and whole networks.

Each block kind builds its own body (latbench.blocks: `BlockKind.build`, from the primitives in
latbench.blocks.layers); this module puts blocks together, folds BatchNorm for inference and
makes inputs. Training modules carry BatchNorm (eps 1e-3, as released); `fold_bn` returns the
inference form in which every BN is folded into the preceding convolution's bias, as TensorRT,
ONNX Runtime and a fused PyTorch module run it. Latency blocks are therefore conv + bias + act.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from latbench.arch import Arch
from latbench.blocks import BlockSpec
from latbench.blocks.layers import Block, ConvBnAct

__all__ = ["build_block", "build_network", "example_input", "fold_bn", "inference_model", "randomize_bn"]


def build_block(spec: BlockSpec) -> Block:
    """A training-form module (with BatchNorm) computing exactly `spec`."""
    return Block(spec, spec.kind_class.build(spec))


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


def inference_model(target: BlockSpec | Arch, seed: int = 0) -> nn.Module:
    """The BN-folded eval module of a block or network, with seeded weights and BN statistics:
    what every backend times."""
    torch.manual_seed(seed)
    module = build_network(target) if isinstance(target, Arch) else build_block(target)
    return fold_bn(randomize_bn(module, seed))


def example_input(spec_or_arch, batch: int = 1, device="cpu", dtype=torch.float32,
                  channels_last: bool = True, seed: int = 0) -> torch.Tensor:
    """A random input of the block's (or network's) shape [batch, C, H, W]."""
    first = spec_or_arch.blocks[0] if isinstance(spec_or_arch, Arch) else spec_or_arch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, first.in_channels, first.height, first.width, generator=g)
    x = x.to(device=device, dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
