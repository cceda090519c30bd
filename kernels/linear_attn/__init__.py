"""Linear attention: naive and chunked PyTorch implementations.

The Triton ones (`triton_chunk`, `triton_recurrent`) are imported from their modules on demand,
since Triton is optional; the public entry points are in kernels.dispatch.
"""

from kernels.linear_attn.chunk import torch_chunk_linear_attn
from kernels.linear_attn.naive import naive_recurrent_linear_attn

__all__ = ["naive_recurrent_linear_attn", "torch_chunk_linear_attn"]
