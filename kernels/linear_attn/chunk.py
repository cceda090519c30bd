"""(Decayed) linear attention in chunked form, in PyTorch.

With no decay or one decay per head the shared chunked code (kernels/common/chunk.py, with a
hand-written backward) runs it. A per-channel decay runs here, differentiated by autograd: within
a chunk the output is a masked, decay-weighted attention matrix times v plus the query read of the
state entering the chunk; the state passes from chunk to chunk in a loop over chunks. The math is
in README.md.
"""

from __future__ import annotations

import torch

from kernels.common.chunk import ChunkScalarDecayFunction, StatePasses, from_chunks, to_chunks
from kernels.common.shapes import check_inputs

SUB_CHUNK = 8  # measured on 2 CPU cores: 8 beats 4 and 16 at K = 64


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
    if g is None or g.dim() == 3:
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
