"""The gated delta rule in chunked (UT / WY) form, in PyTorch, with a hand-written backward.

Within a chunk of C steps every quantity is a dense matmul or one triangular solve; only the state
passes from chunk to chunk, in a short Python loop over chunks (never over positions). The backward
runs the same loop in reverse and is written out by hand because autograd through the chunk loop
keeps many small intermediates and is several times slower on a CPU. The math is in README.md.
"""

from __future__ import annotations

import torch
from einops import rearrange

from kernels.common.shapes import check_inputs, pad_time


def _to_chunks(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """[B, T, H, ...] -> [B, H, N, C, ...] in float32, T zero-padded to N * C."""
    x = pad_time(x.float(), chunk_size)
    return rearrange(x, "b (n c) h ... -> b h n c ...", c=chunk_size)


def _from_chunks(x: torch.Tensor, length: int) -> torch.Tensor:
    """[B, H, N, C, ...] -> [B, T, H, ...], dropping the padding."""
    return rearrange(x, "b h n c ... -> b (n c) h ...")[:, :length]


class ChunkGatedDeltaRuleFunction(torch.autograd.Function):
    """Chunked gated delta rule; g is None for the plain delta rule."""

    @staticmethod
    def forward(
        ctx,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        g: torch.Tensor | None,
        beta: torch.Tensor,
        scale: float,
        initial_state: torch.Tensor | None,
        chunk_size: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, H, K = q.shape
        C = chunk_size
        q_c, k_c, v_c, beta_c = (_to_chunks(x, C) for x in (q, k, v, beta))
        q_c = q_c * scale
        if g is None:
            log_decay = torch.zeros_like(beta_c)
        else:
            log_decay = _to_chunks(g, C).cumsum(-1)  # G_i = sum of g over the chunk up to i: [B, H, N, C]
        lower = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
        # Gamma_ij = exp(G_i - G_j) for j <= i, else 0; masked before exp so it never overflows.
        pair_decay = (log_decay[..., :, None] - log_decay[..., None, :]).masked_fill(~lower, -torch.inf).exp()
        decay_from_start = log_decay.exp()  # gamma_i = exp(G_i)
        decay_to_end = (log_decay[..., -1:] - log_decay).exp()  # exp(G_C - G_i)
        chunk_decay = decay_from_start[..., -1]  # [B, H, N]

        # (I + A) [U~ | W] = [beta v | beta gamma k], A strictly lower: the WY form of the chunk's updates.
        tril_kk = (beta_c[..., None] * (k_c @ k_c.transpose(-1, -2)) * pair_decay).tril(-1)
        rhs = torch.cat([beta_c[..., None] * v_c, (beta_c * decay_from_start)[..., None] * k_c], dim=-1)
        solved = torch.linalg.solve_triangular(tril_kk, rhs, upper=False, unitriangular=True)
        u_tilde, w = solved.split([v_c.shape[-1], K], dim=-1)
        k_to_end = k_c * decay_to_end[..., None]

        state = q.new_zeros(B, H, K, v.shape[-1], dtype=torch.float32)
        if initial_state is not None:
            state = state + initial_state.float()
        chunk_states, updates = [], []
        for n in range(q_c.shape[2]):
            chunk_states.append(state)
            update = u_tilde[:, :, n] - w[:, :, n] @ state  # U = U~ - W S_0: [B, H, C, V]
            updates.append(update)
            state = chunk_decay[:, :, n, None, None] * state + k_to_end[:, :, n].transpose(-1, -2) @ update
        states = torch.stack(chunk_states, dim=2)  # state entering each chunk: [B, H, N, K, V]
        u = torch.stack(updates, dim=2)
        qk = (q_c @ k_c.transpose(-1, -2)) * pair_decay
        o = (q_c * decay_from_start[..., None]) @ states + qk @ u

        ctx.save_for_backward(q_c, k_c, v_c, beta_c, log_decay, pair_decay, tril_kk, u_tilde, w, u, states, qk)
        ctx.scale, ctx.length = scale, T
        ctx.has_gate, ctx.has_initial_state = g is not None, initial_state is not None
        ctx.dtypes = (q.dtype, k.dtype, v.dtype, None if g is None else g.dtype, beta.dtype)
        return _from_chunks(o, T).to(v.dtype), state

    @staticmethod
    def backward(ctx, grad_o: torch.Tensor, grad_final_state: torch.Tensor | None):
        q_c, k_c, v_c, beta_c, log_decay, pair_decay, tril_kk, u_tilde, w, u, states, qk = ctx.saved_tensors
        C = q_c.shape[3]
        do = _to_chunks(grad_o, C)
        decay_from_start = log_decay.exp()
        decay_to_end = (log_decay[..., -1:] - log_decay).exp()
        chunk_decay = decay_from_start[..., -1]
        k_to_end = k_c * decay_to_end[..., None]
        q_decayed = q_c * decay_from_start[..., None]

        # The only sequential part: the state gradient flows back from chunk to chunk.
        grad_u_local = qk.transpose(-1, -2) @ do
        grad_state_from_o = q_decayed.transpose(-1, -2) @ do
        grad_state = torch.zeros_like(states[:, :, 0])
        if grad_final_state is not None:
            grad_state = grad_state + grad_final_state.float()
        grad_updates, grad_states_at_end = [], []
        for n in reversed(range(q_c.shape[2])):
            grad_states_at_end.append(grad_state)
            grad_update = grad_u_local[:, :, n] + k_to_end[:, :, n] @ grad_state
            grad_updates.append(grad_update)
            grad_state = (
                grad_state_from_o[:, :, n]
                + chunk_decay[:, :, n, None, None] * grad_state
                - w[:, :, n].transpose(-1, -2) @ grad_update
            )
        grad_initial_state = grad_state
        grad_u = torch.stack(grad_updates[::-1], dim=2)
        grad_end = torch.stack(grad_states_at_end[::-1], dim=2)  # gradient of the state leaving each chunk

        # o = (q * gamma) S_0 + P U with P = q k^T * Gamma
        grad_p = do @ u.transpose(-1, -2)
        grad_qk = grad_p * pair_decay
        grad_o_state = do @ states.transpose(-1, -2)  # [B, H, N, C, K]
        dq = grad_qk @ k_c + grad_o_state * decay_from_start[..., None]
        dk = grad_qk.transpose(-1, -2) @ q_c
        grad_log_decay = (grad_o_state * q_decayed).sum(-1)
        # d/dG_i and -d/dG_j of every exp(G_i - G_j) factor, from P here and from A below.
        pair_term = grad_p * qk

        # S_C = gamma_C S_0 + (k * exp(G_C - G))^T U
        grad_k_to_end = u @ grad_end.transpose(-1, -2)
        dk = dk + grad_k_to_end * decay_to_end[..., None]
        to_end_term = (grad_k_to_end * k_to_end).sum(-1)
        grad_log_decay = grad_log_decay - to_end_term
        grad_log_decay[..., -1] += to_end_term.sum(-1) + chunk_decay * (states * grad_end).sum((-1, -2))

        # U = U~ - W S_0, with (I + A) [U~ | W] = [beta v | beta gamma k]
        grad_w = -grad_u @ states.transpose(-1, -2)
        grad_rhs = torch.linalg.solve_triangular(
            tril_kk.transpose(-1, -2), torch.cat([grad_u, grad_w], dim=-1), upper=True, unitriangular=True
        )
        grad_beta_v, grad_beta_k = grad_rhs.split([v_c.shape[-1], k_c.shape[-1]], dim=-1)
        grad_tril = -(grad_beta_v @ u_tilde.transpose(-1, -2) + grad_beta_k @ w.transpose(-1, -2)).tril(-1)
        dv = beta_c[..., None] * grad_beta_v
        weighted_k_term = (grad_beta_k * k_c).sum(-1) * decay_from_start
        dbeta = (grad_beta_v * v_c).sum(-1) + weighted_k_term
        grad_log_decay = grad_log_decay + beta_c * weighted_k_term
        dk = dk + (beta_c * decay_from_start)[..., None] * grad_beta_k

        # A_ij = beta_i exp(G_i - G_j) k_i . k_j for j < i
        grad_kk = grad_tril * beta_c[..., None] * pair_decay
        dk = dk + (grad_kk + grad_kk.transpose(-1, -2)) @ k_c
        dbeta = dbeta + (grad_tril * pair_decay * (k_c @ k_c.transpose(-1, -2))).sum(-1)
        pair_term = pair_term + grad_tril * tril_kk
        grad_log_decay = grad_log_decay + pair_term.sum(-1) - pair_term.sum(-2)
        # g_s enters every G_i with i >= s.
        dg = grad_log_decay.flip(-1).cumsum(-1).flip(-1)

        q_dtype, k_dtype, v_dtype, g_dtype, beta_dtype = ctx.dtypes
        T = ctx.length
        return (
            (_from_chunks(dq, T) * ctx.scale).to(q_dtype),
            _from_chunks(dk, T).to(k_dtype),
            _from_chunks(dv, T).to(v_dtype),
            _from_chunks(dg, T).to(g_dtype) if ctx.has_gate else None,
            _from_chunks(dbeta, T).to(beta_dtype),
            None,
            grad_initial_state if ctx.has_initial_state else None,
            None,
        )


def torch_chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunked PyTorch gated delta rule; same contract as `naive_recurrent_gated_delta_rule`.

    q, k: [B, T, H, K]; v: [B, T, H, V]; g: [B, T, H] or None; beta: [B, T, H];
    initial_state: [B, H, K, V]. Returns o: [B, T, H, V] and the final state [B, H, K, V] or None.
    """
    check_inputs(q, k, v, g=g, beta=beta, initial_state=initial_state, per_head_decay=True)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    o, final_state = ChunkGatedDeltaRuleFunction.apply(q, k, v, g, beta, scale, initial_state, chunk_size)
    return o, (final_state if output_final_state else None)
