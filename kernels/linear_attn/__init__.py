"""The linear attn in its three implementations; the public entry points are in kernels.dispatch."""

from kernels.linear_attn.chunk import torch_chunk_linear_attn
from kernels.linear_attn.naive import naive_recurrent_linear_attn

__all__ = ["naive_recurrent_linear_attn", "torch_chunk_linear_attn"]
