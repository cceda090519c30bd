"""The gated delta rule on the shared Triton recurrence (kernels/common/triton_recurrent.py)."""

from __future__ import annotations

import torch

from kernels.common.shapes import check_inputs
from kernels.common.triton_recurrent import triton_recurrent


def triton_recurrent_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Triton gated delta rule; same contract as `naive_recurrent_gated_delta_rule`.

    q, k: [B, T, H, K]; v: [B, T, H, V]; g: [B, T, H]; beta: [B, T, H]; initial_state: [B, H, K, V].
    Returns o: [B, T, H, V] and the final state [B, H, K, V] (float32) or None.
    """
    check_inputs(q, k, v, g=g, beta=beta, initial_state=initial_state, per_head_decay=True)
    return triton_recurrent(q, k, v, g, beta, scale, initial_state, output_final_state)
