"""The specification of (decayed) linear attention: one step at a time, in float32."""

from __future__ import annotations

import torch

from kernels.common.shapes import check_inputs


def naive_recurrent_linear_attn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T;  o_t = scale * S_t^T q_t.

    q, k: [B, T, H, K]; v: [B, T, H, V]; g: None (no decay), [B, T, H] (one log-decay per head, as
    RetNet and Mamba2) or [B, T, H, K] (one per key channel, as GLA); initial_state: [B, H, K, V].
    Returns o: [B, T, H, V] in v's dtype and the final state [B, H, K, V] (float32) or None.
    """
    check_inputs(q, k, v, g=g, initial_state=initial_state)
    B, T, H, K = q.shape
    V = v.shape[-1]
    scale = K**-0.5 if scale is None else scale
    out_dtype = v.dtype
    q, k, v = (x.float() for x in (q, k, v))
    state = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.float()
    outputs = []
    for t in range(T):
        if g is not None:
            decay = g[:, t].float().exp()  # [B, H] or [B, H, K]
            state = state * (decay[..., None, None] if decay.dim() == 2 else decay[..., None])
        state = state + k[:, t, :, :, None] * v[:, t, :, None, :]
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, state))
    o = torch.stack(outputs, dim=1).to(out_dtype)
    return o, (state if output_final_state else None)
