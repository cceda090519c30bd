"""The specification of the delta rule: the gated delta rule without decay."""

from __future__ import annotations

import torch

from kernels.gated_delta_rule.naive import naive_recurrent_gated_delta_rule


def naive_recurrent_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T;  o_t = scale * S_t^T q_t.

    q, k: [B, T, H, K]; v: [B, T, H, V]; beta: [B, T, H]; initial_state: [B, H, K, V].
    Returns o: [B, T, H, V] and the final state [B, H, K, V] or None.
    """
    return naive_recurrent_gated_delta_rule(q, k, v, None, beta, scale, initial_state, output_final_state)
