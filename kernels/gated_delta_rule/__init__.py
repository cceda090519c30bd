"""The gated delta rule: naive and chunked PyTorch implementations.

The Triton ones (`triton_chunk`, `triton_recurrent`) are imported from their modules on demand,
since Triton is optional; the public entry points are in kernels.dispatch.
"""

from kernels.gated_delta_rule.chunk import torch_chunk_gated_delta_rule
from kernels.gated_delta_rule.naive import naive_recurrent_gated_delta_rule

__all__ = ["naive_recurrent_gated_delta_rule", "torch_chunk_gated_delta_rule"]
