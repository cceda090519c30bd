"""The chunked form of every recurrence with one decay per head, in PyTorch, with a hand-written backward.

Covers linear attention (plain, RetNet, Mamba2-style decay: the update is u_t = v_t) and the
(gated) delta rule (u_t from the UT / WY form). Within a chunk of C steps every quantity is a dense
matmul; only the state passes from chunk to chunk, in a short loop over chunks (never over
positions), swappable for Triton kernels (`StatePasses`). The backward is written out because
autograd through the chunk loop keeps many small intermediates and is several times slower on a
CPU. The math is in kernels/gated_delta_rule/README.md and kernels/linear_attn/README.md.
"""

from __future__ import annotations

import torch
from einops import rearrange

from kernels.common.shapes import pad_time
from kernels.common.triangular import unit_lower_inverse


def to_chunks(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """[B, T, H, ...] -> [N, B, H, C, ...] in float32, contiguous, T zero-padded to N * C.

    Chunks lead so that the per-chunk slices taken in the state loop are contiguous.
    """
    x = pad_time(x.float(), chunk_size)
    return rearrange(x, "b (n c) h ... -> n b h c ...", c=chunk_size).contiguous()


def from_chunks(x: torch.Tensor, length: int) -> torch.Tensor:
    """[N, B, H, C, ...] -> [B, T, H, ...], dropping the padding."""
    return rearrange(x, "n b h c ... -> b (n c) h ...")[:, :length]


def _transpose(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-1, -2)


class StatePasses:
    """The sequential part of the chunked form: the state passing from chunk to chunk, and back.

    Everything else is parallel over chunks. This version loops over chunks in PyTorch;
    `kernels.common.triton_chunk_states.TritonStatePasses` runs each pass as one Triton kernel.
    """

    @staticmethod
    def forward(
        u_tilde: torch.Tensor,
        w: torch.Tensor | None,
        k_to_end: torch.Tensor,
        chunk_decay: torch.Tensor | None,
        initial_state: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """U_n = U~_n - W_n S_n;  S_{n+1} = gamma_C S_n + (K exp(G_C - G))_n^T U_n.

        u_tilde: [N, B, H, C, V]; w (None: linear attention, U = U~) and k_to_end: [N, B, H, C, K];
        chunk_decay: [N, B, H] or None (1); initial_state: [B, H, K, V] float32 or None. Returns the
        state entering each chunk [N, B, H, K, V], U [N, B, H, C, V] and the final state [B, H, K, V].
        """
        N, B, H, _, V = u_tilde.shape
        K = k_to_end.shape[-1]
        state = u_tilde.new_zeros(B, H, K, V)
        if initial_state is not None:
            state = state + initial_state
        states = u_tilde.new_empty(N, B, H, K, V)
        u = u_tilde if w is None else torch.empty_like(u_tilde)
        for n in range(N):
            states[n] = state
            if w is not None:
                torch.sub(u_tilde[n], w[n] @ state, out=u[n])
            if chunk_decay is not None:
                state = state * chunk_decay[n, ..., None, None]
            state = state + _transpose(k_to_end[n]) @ u[n]
        return states, u, state

    @staticmethod
    def backward(
        grad_u_local: torch.Tensor,
        grad_state_from_o: torch.Tensor,
        w: torch.Tensor | None,
        k_to_end: torch.Tensor,
        chunk_decay: torch.Tensor | None,
        grad_final_state: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The reverse pass: dU_n = P_n^T dO_n + (K exp(G_C - G))_n dS_{n+1};
        dS_n = gamma_C dS_{n+1} + (Q gamma)_n^T dO_n - W_n^T dU_n.

        grad_u_local (P^T dO; completed in place into dU): [N, B, H, C, V]; grad_state_from_o
        ((Q gamma)^T dO): [N, B, H, K, V]; w (or None) and k_to_end: [N, B, H, C, K]; chunk_decay:
        [N, B, H] or None; grad_final_state: [B, H, K, V] or None. Returns dU [N, B, H, C, V], the
        gradient of the state leaving each chunk [N, B, H, K, V] and that of the initial state.
        """
        grad_u = grad_u_local
        grad_end = torch.empty_like(grad_state_from_o)
        grad_state = torch.zeros_like(grad_state_from_o[0])
        if grad_final_state is not None:
            grad_state = grad_state + grad_final_state
        for n in reversed(range(grad_u.shape[0])):
            grad_end[n] = grad_state
            grad_u[n] += k_to_end[n] @ grad_state
            if chunk_decay is not None:
                grad_state = grad_state * chunk_decay[n, ..., None, None]
            grad_state = grad_state + grad_state_from_o[n]
            if w is not None:
                grad_state = grad_state - _transpose(w[n]) @ grad_u[n]
        return grad_u, grad_end, grad_state


class ChunkScalarDecayFunction(torch.autograd.Function):
    """Chunked recurrence with one log-decay per head (g None: no decay) and, when beta is given,
    the delta rule's update; without beta, linear attention."""

    @staticmethod
    def forward(
        ctx,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        g: torch.Tensor | None,
        beta: torch.Tensor | None,
        scale: float,
        initial_state: torch.Tensor | None,
        chunk_size: int,
        passes: type[StatePasses],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        T = q.shape[1]
        C = chunk_size
        q_c = to_chunks(q, C) * scale
        k_c, v_c = to_chunks(k, C), to_chunks(v, C)
        qk = q_c @ _transpose(k_c)
        decays: tuple[torch.Tensor, ...] = ()
        if g is None:
            qk = qk.tril_()  # P = q k^T on and below the diagonal
            q_decayed, k_to_end = q_c, k_c
        else:
            log_decay = to_chunks(g, C).cumsum(-1)  # G_i = sum of g over the chunk up to i: [N, B, H, C]
            lower = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
            # Gamma_ij = exp(G_i - G_j) for j <= i, else 0; masked before exp so it never overflows.
            pair_decay = (log_decay[..., :, None] - log_decay[..., None, :]).masked_fill_(~lower, -torch.inf).exp_()
            decay_from_start = log_decay.exp()  # gamma_i = exp(G_i)
            decay_to_end = (log_decay[..., -1:] - log_decay).exp_()  # exp(G_C - G_i)
            qk = qk * pair_decay  # P = q k^T * Gamma
            q_decayed = q_c * decay_from_start[..., None]
            k_to_end = k_c * decay_to_end[..., None]
            decays = (pair_decay, decay_from_start, decay_to_end)

        beta_c = kk = tril_kk = inverse = w = None
        u_tilde = v_c
        if beta is not None:
            beta_c = to_chunks(beta, C)
            kk = k_c @ _transpose(k_c)
            k_weighted = k_c * beta_c[..., None]
            if g is not None:
                kk = kk * decays[0]
                k_weighted = k_weighted * decays[1][..., None]
            # (I + A) [U~ | W] = [beta v | beta gamma k] with A_ij = beta_i Gamma_ij k_i.k_j, j < i: the WY
            # form of the chunk's updates. T = (I + A)^-1 is formed once; the backward needs it too.
            tril_kk = (kk * beta_c[..., None]).tril_(-1)
            inverse = unit_lower_inverse(tril_kk)
            u_tilde = inverse @ (v_c * beta_c[..., None])
            w = inverse @ k_weighted

        chunk_decay = None if g is None else decays[1][..., -1]
        initial = None if initial_state is None else initial_state.float()
        states, u, state = passes.forward(u_tilde, w, k_to_end, chunk_decay, initial)
        o = (qk @ u).add_(q_decayed @ states)

        ctx.save_for_backward(
            q_c, k_c, v_c, beta_c, q_decayed, k_to_end, kk, tril_kk, inverse, u_tilde, w, u, states, qk, *decays
        )
        ctx.scale, ctx.length, ctx.passes = scale, T, passes
        ctx.has_initial_state = initial_state is not None
        ctx.dtypes = tuple(None if x is None else x.dtype for x in (q, k, v, g, beta))
        return from_chunks(o, T).to(v.dtype), state

    @staticmethod
    def backward(ctx, grad_o: torch.Tensor, grad_final_state: torch.Tensor | None):
        (q_c, k_c, v_c, beta_c, q_decayed, k_to_end, kk, tril_kk, inverse, u_tilde, w, u, states, qk, *decays) = (
            ctx.saved_tensors
        )
        gated, delta = bool(decays), beta_c is not None
        if gated:
            pair_decay, decay_from_start, decay_to_end = decays
        do = to_chunks(grad_o, q_c.shape[3])

        grad_u_local = _transpose(qk) @ do  # P^T dO
        grad_state_from_o = _transpose(q_decayed) @ do
        chunk_decay = decay_from_start[..., -1] if gated else None
        final = None if grad_final_state is None else grad_final_state.float()
        grad_u, grad_end, grad_initial_state = ctx.passes.backward(
            grad_u_local, grad_state_from_o, w, k_to_end, chunk_decay, final
        )

        # o = (q * gamma) S_0 + P U, with P = q k^T * Gamma
        grad_p = do @ _transpose(u)
        grad_qk = grad_p * pair_decay if gated else grad_p.tril()
        grad_o_state = do @ _transpose(states)  # [N, B, H, C, K]
        dq = grad_qk @ k_c
        dq += grad_o_state * decay_from_start[..., None] if gated else grad_o_state
        dk = _transpose(grad_qk) @ q_c
        # S_C = gamma_C S_0 + (k * exp(G_C - G))^T U
        grad_k_to_end = u @ _transpose(grad_end)
        dk += grad_k_to_end * decay_to_end[..., None] if gated else grad_k_to_end

        dbeta = None
        if delta:
            # U = U~ - W S_0, with [U~ | W] = T [beta v | beta gamma k] and T = (I + A)^-1
            grad_w = -(grad_u @ _transpose(states))
            grad_v_weighted = _transpose(inverse) @ grad_u
            grad_k_weighted = _transpose(inverse) @ grad_w
            grad_tril = (grad_v_weighted @ _transpose(u_tilde)).add_(grad_k_weighted @ _transpose(w)).neg_().tril_(-1)
            dv = grad_v_weighted * beta_c[..., None]
            k_weighted_term = (grad_k_weighted * k_c).sum(-1)  # gradient of beta_i gamma_i
            dbeta = (grad_v_weighted * v_c).sum(-1)
            dbeta += k_weighted_term * decay_from_start if gated else k_weighted_term
            dk += grad_k_weighted * (beta_c * decay_from_start if gated else beta_c)[..., None]
            # A_ij = beta_i Gamma_ij k_i.k_j for j < i (kk holds Gamma_ij k_i.k_j)
            dbeta += (grad_tril * kk).sum(-1)
            grad_kk = grad_tril * beta_c[..., None]
            if gated:
                grad_kk *= pair_decay
            dk += (grad_kk + _transpose(grad_kk)) @ k_c
        else:
            dv = grad_u

        dg = None
        if gated:
            grad_log_decay = (grad_o_state * q_decayed).sum(-1)
            to_end_term = (grad_k_to_end * k_to_end).sum(-1)
            grad_log_decay -= to_end_term
            chunk_term = decay_from_start[..., -1] * (states * grad_end).sum((-1, -2))
            grad_log_decay[..., -1] += to_end_term.sum(-1) + chunk_term
            # Every exp(G_i - G_j) factor, in P and in A: +d/dG_i, -d/dG_j.
            pair_term = grad_p * qk
            if delta:
                grad_log_decay += beta_c * decay_from_start * k_weighted_term
                pair_term += grad_tril * tril_kk
            grad_log_decay += pair_term.sum(-1) - pair_term.sum(-2)
            # g_s enters every G_i with i >= s.
            dg = grad_log_decay.flip(-1).cumsum(-1).flip(-1)

        q_dtype, k_dtype, v_dtype, g_dtype, beta_dtype = ctx.dtypes
        T = ctx.length
        return (
            (from_chunks(dq, T) * ctx.scale).to(q_dtype),
            from_chunks(dk, T).to(k_dtype),
            from_chunks(dv, T).to(v_dtype),
            None if dg is None else from_chunks(dg, T).to(g_dtype),
            None if dbeta is None else from_chunks(dbeta, T).to(beta_dtype),
            None,
            grad_initial_state if ctx.has_initial_state else None,
            None,
            None,
        )
