"""The sequential part of the chunked form (kernels/common/chunk.py) as Triton kernels, one pass each way.

`kernels.common.chunk.StatePasses` states the math and loops over chunks in PyTorch;
here one program owns one (batch, head) pair and a block of BV value channels and keeps its
[K, BV] slice of the state (or of its gradient) in registers across all chunks, so each pass is one
launch instead of a few per chunk. The parallel parts stay batched matmuls.

The matmuls run at IEEE float32 precision rather than TF32: the state carries rounding from chunk
to chunk, and these products are a small share of the op's work.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

MAX_VALUE_BLOCK = 32  # more programs in flight; with num_stages=2, two blocks fit per SM
NUM_STAGES = 2
NUM_WARPS = 8


@triton.jit
def states_forward_kernel(
    u_tilde,
    w,
    k_to_end,
    chunk_decay,
    initial_state,
    states,
    u,
    final_state,
    NUM_CHUNKS,
    BH,
    C: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    GATED: tl.constexpr,
    DELTA: tl.constexpr,
    HAS_INITIAL_STATE: tl.constexpr,
):
    i_v, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    rows = tl.arange(0, C)
    keys = tl.arange(0, BK)
    values = i_v * BV + tl.arange(0, BV)
    key_mask, value_mask = keys < K, values < V
    state_mask = key_mask[:, None] & value_mask[None, :]
    state_offsets = keys[:, None] * V + values[None, :]
    key_tile = rows[:, None] * K + keys[None, :]
    value_tile = rows[:, None] * V + values[None, :]

    state = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_INITIAL_STATE:
        state += tl.load(initial_state + i_bh * K * V + state_offsets, mask=state_mask, other=0.0)
    for n in range(NUM_CHUNKS):
        chunk = n * BH + i_bh  # index into the leading [N, B * H] of every chunked tensor
        tl.store(states + chunk * K * V + state_offsets, state, mask=state_mask)
        b_k = tl.load(k_to_end + chunk * C * K + key_tile, mask=key_mask[None, :], other=0.0)
        b_u = tl.load(u_tilde + chunk * C * V + value_tile, mask=value_mask[None, :], other=0.0)
        if DELTA:
            b_w = tl.load(w + chunk * C * K + key_tile, mask=key_mask[None, :], other=0.0)
            b_u -= tl.dot(b_w, state, input_precision="ieee")
            tl.store(u + chunk * C * V + value_tile, b_u, mask=value_mask[None, :])
        if GATED:
            state = state * tl.load(chunk_decay + chunk)
        state += tl.dot(tl.trans(b_k), b_u, input_precision="ieee")
    tl.store(final_state + i_bh * K * V + state_offsets, state, mask=state_mask)


@triton.jit
def states_backward_kernel(
    grad_u_local,
    grad_state_from_o,
    w,
    k_to_end,
    chunk_decay,
    grad_final_state,
    grad_u,
    grad_end,
    grad_initial_state,
    NUM_CHUNKS,
    BH,
    C: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    GATED: tl.constexpr,
    DELTA: tl.constexpr,
    HAS_GRAD_FINAL_STATE: tl.constexpr,
):
    i_v, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    rows = tl.arange(0, C)
    keys = tl.arange(0, BK)
    values = i_v * BV + tl.arange(0, BV)
    key_mask, value_mask = keys < K, values < V
    state_mask = key_mask[:, None] & value_mask[None, :]
    state_offsets = keys[:, None] * V + values[None, :]
    key_tile = rows[:, None] * K + keys[None, :]
    value_tile = rows[:, None] * V + values[None, :]

    grad_state = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_GRAD_FINAL_STATE:
        grad_state += tl.load(grad_final_state + i_bh * K * V + state_offsets, mask=state_mask, other=0.0)
    for n_from_end in range(NUM_CHUNKS):
        chunk = (NUM_CHUNKS - 1 - n_from_end) * BH + i_bh
        tl.store(grad_end + chunk * K * V + state_offsets, grad_state, mask=state_mask)
        b_k = tl.load(k_to_end + chunk * C * K + key_tile, mask=key_mask[None, :], other=0.0)
        b_du = tl.load(grad_u_local + chunk * C * V + value_tile, mask=value_mask[None, :], other=0.0)
        b_du += tl.dot(b_k, grad_state, input_precision="ieee")
        tl.store(grad_u + chunk * C * V + value_tile, b_du, mask=value_mask[None, :])
        if GATED:
            grad_state = grad_state * tl.load(chunk_decay + chunk)
        grad_state += tl.load(grad_state_from_o + chunk * K * V + state_offsets, mask=state_mask, other=0.0)
        if DELTA:
            b_w = tl.load(w + chunk * C * K + key_tile, mask=key_mask[None, :], other=0.0)
            grad_state -= tl.dot(tl.trans(b_w), b_du, input_precision="ieee")
    tl.store(grad_initial_state + i_bh * K * V + state_offsets, grad_state, mask=state_mask)


def _blocks(C: int, K: int, V: int) -> tuple[int, int, int]:
    """(BK, BV, number of value blocks); Triton's dot needs every side to be at least 16."""
    if C < 16 or C & (C - 1):
        raise ValueError(f"the Triton state passes need a power-of-two chunk size of at least 16; got {C}")
    if K > 256:
        raise ValueError(f"the Triton state passes keep [K, BV] in registers and support K <= 256; got K={K}")
    BK = max(16, triton.next_power_of_2(K))
    BV = max(16, min(triton.next_power_of_2(V), MAX_VALUE_BLOCK))
    return BK, BV, triton.cdiv(V, BV)


class TritonStatePasses:
    """Drop-in for `kernels.common.chunk.StatePasses`, same arguments and results."""

    @staticmethod
    def forward(
        u_tilde: torch.Tensor,
        w: torch.Tensor | None,
        k_to_end: torch.Tensor,
        chunk_decay: torch.Tensor | None,
        initial_state: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        N, B, H, C, V = u_tilde.shape
        K = k_to_end.shape[-1]
        BK, BV, num_value_blocks = _blocks(C, K, V)
        states = u_tilde.new_empty(N, B, H, K, V)
        u = u_tilde if w is None else torch.empty_like(u_tilde)  # linear attention: U = U~
        final_state = u_tilde.new_empty(B, H, K, V)
        states_forward_kernel[(num_value_blocks, B * H)](
            u_tilde.contiguous(),
            u_tilde if w is None else w.contiguous(),
            k_to_end.contiguous(),
            u_tilde if chunk_decay is None else chunk_decay.contiguous(),  # unread when ungated
            u_tilde if initial_state is None else initial_state.contiguous(),
            states,
            u,
            final_state,
            N,
            B * H,
            C=C,
            K=K,
            V=V,
            BK=BK,
            BV=BV,
            GATED=chunk_decay is not None,
            DELTA=w is not None,
            HAS_INITIAL_STATE=initial_state is not None,
            num_warps=NUM_WARPS,
            num_stages=NUM_STAGES,
        )
        return states, u, final_state

    @staticmethod
    def backward(
        grad_u_local: torch.Tensor,
        grad_state_from_o: torch.Tensor,
        w: torch.Tensor | None,
        k_to_end: torch.Tensor,
        chunk_decay: torch.Tensor | None,
        grad_final_state: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        N, B, H, C, V = grad_u_local.shape
        K = k_to_end.shape[-1]
        BK, BV, num_value_blocks = _blocks(C, K, V)
        grad_u = torch.empty_like(grad_u_local)
        grad_end = torch.empty_like(grad_state_from_o)
        grad_initial_state = grad_u_local.new_empty(B, H, K, V)
        states_backward_kernel[(num_value_blocks, B * H)](
            grad_u_local.contiguous(),
            grad_state_from_o.contiguous(),
            grad_u_local if w is None else w.contiguous(),
            k_to_end.contiguous(),
            grad_u_local if chunk_decay is None else chunk_decay.contiguous(),
            grad_u_local if grad_final_state is None else grad_final_state.contiguous(),
            grad_u,
            grad_end,
            grad_initial_state,
            N,
            B * H,
            C=C,
            K=K,
            V=V,
            BK=BK,
            BV=BV,
            GATED=chunk_decay is not None,
            DELTA=w is not None,
            HAS_GRAD_FINAL_STATE=grad_final_state is not None,
            num_warps=NUM_WARPS,
            num_stages=NUM_STAGES,
        )
        return grad_u, grad_end, grad_initial_state
