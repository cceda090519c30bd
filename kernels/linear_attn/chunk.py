"""(Decayed) linear attention in chunked form, in PyTorch.

With no decay, `ChunkLinearAttnFunction` below: the states entering the chunks are an exclusive
prefix sum of the chunks' k^T v (no loop over chunks), scale rides on the matmuls, and the
backward is written out. With one decay per head the shared chunked code (kernels/common/
chunk.py, with a hand-written backward) runs it. A per-channel decay runs here, differentiated by
autograd: within a chunk the output is a masked, decay-weighted attention matrix times v plus the
query read of the state entering the chunk; the state passes from chunk to chunk in a loop over
chunks. The math is in README.md.
"""

from __future__ import annotations

import torch

from kernels.common.chunk import ChunkScalarDecayFunction, StatePasses, from_chunks, to_chunks
from kernels.common.shapes import check_inputs

SUB_CHUNK = 8  # measured on 2 CPU cores: 8 beats 4 and 16 at K = 64


def _heads_first_chunks(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """[B, T, H, D] -> [B * H * N, C, D] float32, T zero-padded to N * C, in one copy.

    Batch and heads lead so that every chunk of every head is one matrix of one batched matmul.
    """
    B, T, H, D = x.shape
    N = -(-T // chunk_size)
    out = x.new_empty(B, H, N * chunk_size, D, dtype=torch.float32)
    out[:, :, :T] = x.transpose(1, 2)
    out[:, :, T:] = 0
    return out.view(B * H * N, chunk_size, D)


def _time_major(x: torch.Tensor, B: int, T: int, H: int, dtype: torch.dtype) -> torch.Tensor:
    """[B * H * N, C, D] -> a contiguous [B, T, H, D] in `dtype`, dropping the padding, in one copy."""
    chunked = x.view(B, H, -1, x.shape[-1])[:, :, :T].transpose(1, 2)
    return torch.empty(B, T, H, x.shape[-1], dtype=dtype, device=x.device).copy_(chunked)


def _prefix_sums(x: torch.Tensor, exclusive_of: str) -> torch.Tensor:
    """Over chunks (dim 2 of [B, H, N, K, V]): the sum of the chunks before each one ("later": after it)."""
    B, H, N = x.shape[:3]
    before = torch.ones(N, N, dtype=x.dtype, device=x.device).tril_(-1)  # [n, m]: 1 where m < n
    weights = before if exclusive_of == "earlier" else before.t()
    # One small matmul over N rather than a cumulative sum along a middle dimension (slow on a CPU).
    return (weights @ x.reshape(B * H, N, -1)).view(x.shape)


class ChunkLinearAttnFunction(torch.autograd.Function):
    """o = scale * (tril(q k^T) v + q S_n) per chunk n, with S_n = S_0 + sum_{m < n} k_m^T v_m.

    Every chunk of every head is one matrix of one batched matmul; sums accumulate in place and
    scale rides on the matmuls' alpha and beta (`baddbmm_`), so no pass over memory is spent on it.
    """

    @staticmethod
    def forward(ctx, q, k, v, scale, initial_state, chunk_size):  # noqa: ANN001, ANN205 - autograd's signature
        B, T, H, K = q.shape
        V = v.shape[-1]
        q_c, k_c, v_c = (_heads_first_chunks(x, chunk_size) for x in (q, k, v))  # [B H N, C, K | V]
        N = q_c.shape[0] // (B * H)
        # scale * tril(q k^T); with beta = 0 the uninitialised tensor is never read.
        scores = q_c.new_empty(B * H * N, chunk_size, chunk_size)
        scores.baddbmm_(q_c, k_c.transpose(1, 2), beta=0, alpha=scale).tril_()
        writes = torch.bmm(k_c.transpose(1, 2), v_c).view(B, H, N, K, V)
        states = _prefix_sums(writes, "earlier")  # the state entering each chunk
        final_state = states[:, :, -1] + writes[:, :, -1]
        if initial_state is not None:
            states += initial_state.float()[:, :, None]
            final_state += initial_state.float()
        states = states.view(B * H * N, K, V)
        o = torch.bmm(scores, v_c).baddbmm_(q_c, states, alpha=scale)
        ctx.save_for_backward(q_c, k_c, v_c, scores, states)
        ctx.scale, ctx.shape, ctx.dtypes = scale, (B, T, H, N), (q.dtype, k.dtype, v.dtype)
        ctx.has_initial_state = initial_state is not None
        return _time_major(o, B, T, H, v.dtype), final_state

    @staticmethod
    def backward(ctx, grad_o, grad_final_state):  # noqa: ANN001, ANN205
        q_c, k_c, v_c, scores, states = ctx.saved_tensors
        scale, (B, T, H, N) = ctx.scale, ctx.shape
        C, K, V = q_c.shape[1], q_c.shape[2], v_c.shape[2]
        do = _heads_first_chunks(grad_o, C)
        # k_m^T v_m reaches the states entering every later chunk, which the queries there read
        # (scale q_n^T do_n), and the final state.
        reads = torch.bmm(q_c.transpose(1, 2), do).mul_(scale).view(B, H, N, K, V)
        grad_writes = _prefix_sums(reads, "later")
        grad_initial_state = grad_writes[:, :, 0] + reads[:, :, 0]
        if grad_final_state is not None:
            grad_writes += grad_final_state.float()[:, :, None]
            grad_initial_state += grad_final_state.float()
        grad_writes = grad_writes.view(B * H * N, K, V)
        grad_scores = torch.bmm(do, v_c.transpose(1, 2)).tril_()  # of tril(q k^T), over scale
        dq = torch.bmm(do, states.transpose(1, 2)).baddbmm_(grad_scores, k_c, beta=scale, alpha=scale)
        dk = torch.bmm(v_c, grad_writes.transpose(1, 2)).baddbmm_(grad_scores.transpose(1, 2), q_c, alpha=scale)
        dv = torch.bmm(k_c, grad_writes).baddbmm_(scores.transpose(1, 2), do)
        q_dtype, k_dtype, v_dtype = ctx.dtypes
        return (_time_major(dq, B, T, H, q_dtype), _time_major(dk, B, T, H, k_dtype),
                _time_major(dv, B, T, H, v_dtype), None, grad_initial_state if ctx.has_initial_state else None, None)


def _per_channel_decay_intra_chunk(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_decay: torch.Tensor
) -> torch.Tensor:
    """sum_{j <= i} (sum_c q_ic k_jc exp(G_ic - G_jc)) v_j within each chunk, never overflowing.

    q, k, log_decay (G): [..., C, K]; v: [..., C, V]. Returns [..., C, V]. Pairs inside one sub-chunk
    of SUB_CHUNK steps materialise exp(G_i - G_j) per channel; pairs across sub-chunks factor it
    through the position just before the query's sub-chunk, where both factors are at most 1 (g <= 0),
    and become one matmul.
    """
    C, K = q.shape[-2:]
    S = min(C, SUB_CHUNK)
    M = C // S
    q_sub, k_sub, v_sub, decay_sub = (x.unflatten(-2, (M, S)) for x in (q, k, v, log_decay))  # [..., M, S, *]
    lower = torch.ones(S, S, dtype=torch.bool, device=q.device).tril()
    pair_log_decay = decay_sub[..., :, None, :] - decay_sub[..., None, :, :]  # [..., M, S, S, K]
    pair_decay = pair_log_decay.masked_fill(~lower[..., None], -torch.inf).exp()
    scores = (q_sub[..., :, None, :] * k_sub[..., None, :, :] * pair_decay).sum(-1)  # [..., M, S, S]
    out = scores @ v_sub
    if M > 1:
        # G just before each sub-chunk (0 before the first): [..., M, K].
        reference = torch.cat([torch.zeros_like(log_decay[..., :1, :]), log_decay[..., S - 1 : C - S : S, :]], -2)
        q_scaled = q_sub * (decay_sub - reference[..., :, None, :]).exp()  # [..., M, S, K]
        earlier = torch.arange(C, device=q.device) < torch.arange(0, C, S, device=q.device)[:, None]  # [M, C]
        key_log_decay = reference[..., :, None, :] - log_decay[..., None, :, :]  # [..., M, C, K]
        k_scaled = k[..., None, :, :] * key_log_decay.masked_fill(~earlier[..., None], -torch.inf).exp()
        out = out + (q_scaled @ k_scaled.transpose(-1, -2)) @ v[..., None, :, :]
    return out.flatten(-3, -2)


def torch_chunk_linear_attn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunked PyTorch linear attention; same contract as `naive_recurrent_linear_attn`.

    q, k: [B, T, H, K]; v: [B, T, H, V]; g: None, [B, T, H] or [B, T, H, K] log-decay;
    initial_state: [B, H, K, V]; chunk_size: a power of two. Returns o: [B, T, H, V] and the final
    state [B, H, K, V] or None.
    """
    check_inputs(q, k, v, g=g, initial_state=initial_state)
    B, T, H, K = q.shape
    C = chunk_size
    scale = K**-0.5 if scale is None else scale
    if g is None:
        o, final_state = ChunkLinearAttnFunction.apply(q, k, v, scale, initial_state, chunk_size)
        return o, (final_state if output_final_state else None)
    if g.dim() == 3:
        o, final_state = ChunkScalarDecayFunction.apply(q, k, v, g, None, scale, initial_state, chunk_size, StatePasses)
        return o, (final_state if output_final_state else None)

    q_c, k_c, v_c = to_chunks(q, C) * scale, to_chunks(k, C), to_chunks(v, C)
    log_decay = to_chunks(g, C).cumsum(-2)  # G: [N, B, H, C, K]
    intra = _per_channel_decay_intra_chunk(q_c, k_c, v_c, log_decay)
    q_read = q_c * log_decay.exp()
    k_write = k_c * (log_decay[..., -1:, :] - log_decay).exp()
    chunk_decay = log_decay[..., -1, :].exp()[..., None]  # [N, B, H, K, 1]

    writes = k_write.transpose(-1, -2) @ v_c  # each chunk's contribution to the state: [N, B, H, K, V]
    state = q.new_zeros(B, H, K, v.shape[-1], dtype=torch.float32)
    if initial_state is not None:
        state = state + initial_state.float()
    chunk_states = []
    for n in range(q_c.shape[0]):
        chunk_states.append(state)
        state = chunk_decay[n] * state + writes[n]
    o = q_read @ torch.stack(chunk_states) + intra
    o = from_chunks(o, T).to(v.dtype)
    return o, (state if output_final_state else None)
