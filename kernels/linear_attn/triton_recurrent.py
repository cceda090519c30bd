"""(Decayed) linear attention on the shared Triton recurrence (kernels/common/triton_recurrent.py)."""

from __future__ import annotations

import torch

from kernels.common.shapes import check_inputs
from kernels.common.triton_recurrent import triton_recurrent


def triton_recurrent_linear_attn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Triton linear attention; same contract as `naive_recurrent_linear_attn`.

    q, k: [B, T, H, K]; v: [B, T, H, V]; g: None, [B, T, H] or [B, T, H, K]; initial_state:
    [B, H, K, V]. Returns o: [B, T, H, V] and the final state [B, H, K, V] (float32) or None.
    """
    check_inputs(q, k, v, g=g, initial_state=initial_state)
    return triton_recurrent(q, k, v, g, None, scale, initial_state, output_final_state)
