"""The delta rule in chunked (UT / WY) form: the gated delta rule's chunked PyTorch code without decay."""

from __future__ import annotations

import torch

from kernels.gated_delta_rule.chunk import torch_chunk_gated_delta_rule


def torch_chunk_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunked PyTorch delta rule; same contract as `naive_recurrent_delta_rule`.

    q, k: [B, T, H, K]; v: [B, T, H, V]; beta: [B, T, H]; initial_state: [B, H, K, V].
    Returns o: [B, T, H, V] and the final state [B, H, K, V] or None.
    """
    return torch_chunk_gated_delta_rule(
        q, k, v, None, beta, scale, initial_state, output_final_state, chunk_size=chunk_size
    )
