"""The gated delta rule in its three implementations; the public entry points are in kernels.dispatch."""

from kernels.gated_delta_rule.chunk import torch_chunk_gated_delta_rule
from kernels.gated_delta_rule.naive import naive_recurrent_gated_delta_rule

__all__ = ["naive_recurrent_gated_delta_rule", "torch_chunk_gated_delta_rule"]
