"""The gated delta rule in chunked (UT / WY) form, in PyTorch, with a hand-written backward.

The code is shared with linear attention in kernels/common/chunk.py; the math is in README.md.
"""

from __future__ import annotations

import torch

from kernels.common.chunk import ChunkScalarDecayFunction, StatePasses
from kernels.common.shapes import check_inputs


def torch_chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunked PyTorch gated delta rule; same contract as `naive_recurrent_gated_delta_rule`.

    q, k: [B, T, H, K]; v: [B, T, H, V]; g: [B, T, H] or None; beta: [B, T, H];
    initial_state: [B, H, K, V]. Returns o: [B, T, H, V] and the final state [B, H, K, V] or None.
    chunk_size (a power of two) defaults to 32: on two CPU cores at K = V = 64 it beat 64 in
    `python -m kernels.bench`.
    """
    check_inputs(q, k, v, g=g, beta=beta, initial_state=initial_state, per_head_decay=True)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    o, final_state = ChunkScalarDecayFunction.apply(q, k, v, g, beta, scale, initial_state, chunk_size, StatePasses)
    return o, (final_state if output_final_state else None)
