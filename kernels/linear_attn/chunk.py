"""(Decayed) linear attention in chunked form, in PyTorch; autograd differentiates it.

Within a chunk of C steps the output is a masked, decay-weighted attention matrix times v plus the
query read of the state entering the chunk; the state passes from chunk to chunk in a Python loop
over chunks (never over positions). The math is in README.md.
"""

from __future__ import annotations

import torch
from einops import rearrange

from kernels.common.shapes import check_inputs, pad_time


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
    initial_state: [B, H, K, V]. Returns o: [B, T, H, V] and the final state [B, H, K, V] or None.
    """
    check_inputs(q, k, v, g=g, initial_state=initial_state)
    B, T, H, K = q.shape
    C = chunk_size
    scale = K**-0.5 if scale is None else scale

    def to_chunks(x: torch.Tensor) -> torch.Tensor:
        return rearrange(pad_time(x.float(), C), "b (n c) h ... -> b h n c ...", c=C)

    q_c, k_c, v_c = to_chunks(q * scale), to_chunks(k), to_chunks(v)
    lower = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    if g is None:
        scores = (q_c @ k_c.transpose(-1, -2)).masked_fill(~lower, 0)
        q_read, k_write = q_c, k_c
        chunk_decay = None
    else:
        # One log-decay per head becomes a single key channel that broadcasts over K.
        log_decay = to_chunks(g if g.dim() == 4 else g[..., None]).cumsum(3)  # G: [B, H, N, C, 1 or K]
        # exp(G_i - G_j) for j <= i, masked before exp so that it never overflows.
        pair_log_decay = log_decay[..., :, None, :] - log_decay[..., None, :, :]  # [B, H, N, C, C, 1 or K]
        pair_decay = pair_log_decay.masked_fill(~lower[..., None], -torch.inf).exp()
        if log_decay.shape[-1] == 1:
            scores = (q_c @ k_c.transpose(-1, -2)) * pair_decay[..., 0]
        else:
            scores = torch.einsum("bhnik,bhnjk,bhnijk->bhnij", q_c, k_c, pair_decay)
        q_read = q_c * log_decay.exp()
        k_write = k_c * (log_decay[..., -1:, :] - log_decay).exp()
        chunk_decay = log_decay[..., -1, :].exp()[..., None]  # [B, H, N, 1 or K, 1]

    writes = k_write.transpose(-1, -2) @ v_c  # each chunk's contribution to the state: [B, H, N, K, V]
    state = q.new_zeros(B, H, K, v.shape[-1], dtype=torch.float32)
    if initial_state is not None:
        state = state + initial_state.float()
    chunk_states = []
    for n in range(q_c.shape[2]):
        chunk_states.append(state)
        decayed = state if chunk_decay is None else chunk_decay[:, :, n] * state
        state = decayed + writes[:, :, n]
    states = torch.stack(chunk_states, dim=2)
    o = q_read @ states + scores @ v_c
    o = rearrange(o, "b h n c v -> b (n c) h v")[:, :T].to(v.dtype)
    return o, (state if output_final_state else None)
