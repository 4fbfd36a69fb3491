"""Block kinds as a registry (timm's builder is the model: architecture as data, one class per
block type). Each kind, in a module of its own, owns its key tokens and their parsing, its
validation, its analytic costs, its torch module and the fields a search space may vary for it;
everything else looks kinds up here. Adding a kind is one module and one line below.
"""

from latbench.blocks.base import (ACTIVATIONS, KINDS, MAX_SIZE, BlockArgs, BlockKind, BlockSpec,
                                  format_number, kind_index, kind_of, parse_key, register)
from latbench.blocks.conv import Conv, Head
from latbench.blocks.dsconv import DepthwiseSeparable
from latbench.blocks.inverted import EdgeResidual, FusedInvertedResidual, InvertedResidual
from latbench.blocks.shuffle import ShuffleInvertedResidual
from latbench.blocks.tail import PoolTail, Tail

# Registration order is the order of kind columns in feature matrices and reports.
register(Head())
register(Conv())
register(FusedInvertedResidual())
register(InvertedResidual())
register(Tail())
register(DepthwiseSeparable())
register(EdgeResidual())
register(PoolTail())
register(ShuffleInvertedResidual())

__all__ = ["ACTIVATIONS", "KINDS", "MAX_SIZE", "BlockArgs", "BlockKind", "BlockSpec", "format_number",
           "kind_index", "kind_of", "parse_key", "register"]
