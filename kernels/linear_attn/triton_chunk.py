"""Linear attention in chunked form on CUDA.

No decay or one decay per head: the shared chunked op with its state passes in Triton. A
per-channel decay has no chunked Triton path yet and runs the Triton recurrence.
"""

from __future__ import annotations

import torch

from kernels.common.chunk import ChunkScalarDecayFunction
from kernels.common.shapes import check_inputs
from kernels.common.triton_chunk_states import TritonStatePasses
from kernels.common.triton_recurrent import triton_recurrent


def triton_chunk_linear_attn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Triton-backed chunked linear attention; contract of `naive_recurrent_linear_attn`.

    q, k: [B, T, H, K]; v: [B, T, H, V]; g: None, [B, T, H] or [B, T, H, K]; initial_state:
    [B, H, K, V]. Returns o: [B, T, H, V] and the final state [B, H, K, V] (float32) or None.
    """
    check_inputs(q, k, v, g=g, initial_state=initial_state)
    if g is not None and g.dim() == 4:
        return triton_recurrent(q, k, v, g, None, scale, initial_state, output_final_state)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    o, final_state = ChunkScalarDecayFunction.apply(
        q, k, v, g, None, scale, initial_state, chunk_size, TritonStatePasses
    )
    return o, (final_state if output_final_state else None)
