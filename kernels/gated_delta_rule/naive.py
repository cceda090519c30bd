"""The specification of the gated delta rule: one step at a time, in float32."""

from __future__ import annotations

import torch

from kernels.common.shapes import check_inputs


def naive_recurrent_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T;  o_t = scale * S_t^T q_t.

    q, k: [B, T, H, K]; v: [B, T, H, V]; g: [B, T, H] log-decay, or None for the plain delta rule;
    beta: [B, T, H], in (0, 2) to allow negative eigenvalues; initial_state: [B, H, K, V].
    Returns o: [B, T, H, V] in v's dtype and the final state [B, H, K, V] (float32) or None.
    """
    check_inputs(q, k, v, g=g, beta=beta, initial_state=initial_state, per_head_decay=True)
    B, T, H, K = q.shape
    V = v.shape[-1]
    scale = K**-0.5 if scale is None else scale
    out_dtype = v.dtype
    q, k, v, beta = (x.float() for x in (q, k, v, beta))
    state = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.float()
    outputs = []
    for t in range(T):
        if g is not None:
            state = state * g[:, t].float().exp()[..., None, None]
        k_t = k[:, t]
        # The delta rule writes beta * (target - current prediction) for key k_t.
        predicted = torch.einsum("bhk,bhkv->bhv", k_t, state)
        update = beta[:, t, :, None] * (v[:, t] - predicted)
        state = state + k_t[..., None] * update[..., None, :]
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, state))
    o = torch.stack(outputs, dim=1).to(out_dtype)
    return o, (state if output_final_state else None)
