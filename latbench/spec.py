"""Block specs (`BlockSpec`, `parse_key`): the frozen, validated unit that is built, timed,
stored and predicted. The kinds and the key grammar live in latbench.blocks; this module is the
stable name of the spec API.
"""

from latbench.blocks import ACTIVATIONS, KINDS, MAX_SIZE, BlockArgs, BlockSpec, format_number, parse_key

__all__ = ["ACTIVATIONS", "KINDS", "MAX_SIZE", "BlockArgs", "BlockSpec", "format_number", "parse_key"]
