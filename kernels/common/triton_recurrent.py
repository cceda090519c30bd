"""One Triton recurrence for every op: decayed linear attention and the (gated) delta rule.

Per step, with a = exp(g_t) (a scalar, a per-key-channel vector, or 1):
    S~ = a * S_{t-1};  u_t = beta_t (v_t - S~^T k_t) for the delta rule, else v_t;
    S_t = S~ + k_t u_t^T;  o_t = scale * S_t^T q_t.
One program owns one (batch, head) pair and a block of BV value channels, so its slice of the
state, [K, BV], stays in registers while it walks the sequence.

The backward walks the sequence in reverse and needs S_{t-1} at every step. The forward stores the
state at the start of each segment of SEGMENT steps; the backward re-runs each segment forward from
its checkpoint into a scratch buffer, then walks it in reverse. Memory is O(T / SEGMENT) states plus
one segment of scratch per program, and the forward work is done twice.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

SEGMENT = 64
NUM_WARPS = 4
MAX_VALUE_BLOCK = 32
GATE_NONE, GATE_SCALAR, GATE_VECTOR = 0, 1, 2


@triton.jit
def recurrent_forward_kernel(
    q,
    k,
    v,
    g,
    beta,
    initial_state,
    o,
    final_state,
    checkpoints,
    scale,
    T,
    NUM_SEGMENTS,
    H: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    SEGMENT: tl.constexpr,
    GATE: tl.constexpr,
    DELTA: tl.constexpr,
    HAS_INITIAL_STATE: tl.constexpr,
    STORE_FINAL_STATE: tl.constexpr,
):
    i_v, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    num_value_blocks = tl.num_programs(0)
    keys = tl.arange(0, BK)
    values = i_v * BV + tl.arange(0, BV)
    key_mask, value_mask = keys < K, values < V
    state_mask = key_mask[:, None] & value_mask[None, :]
    state_offsets = keys[:, None] * V + values[None, :]
    block_offsets = tl.arange(0, BK)[:, None] * BV + tl.arange(0, BV)[None, :]
    single = tl.arange(0, 1)
    checkpoint_base = checkpoints + (i_bh * num_value_blocks + i_v) * NUM_SEGMENTS * BK * BV

    state = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_INITIAL_STATE:
        state += tl.load(initial_state + i_bh * K * V + state_offsets, mask=state_mask, other=0.0).to(tl.float32)

    for segment in range(NUM_SEGMENTS):
        tl.store(checkpoint_base + segment * BK * BV + block_offsets, state)
        for step in range(SEGMENT):
            t = segment * SEGMENT + step
            live = (t + single) < T  # [1]: the interpreter wants tensor masks
            row = (i_b * T + t) * H + i_h  # [B, T, H] index of this step
            b_q = tl.load(q + row * K + keys, mask=key_mask & live, other=0.0).to(tl.float32) * scale
            b_k = tl.load(k + row * K + keys, mask=key_mask & live, other=0.0).to(tl.float32)
            b_v = tl.load(v + row * V + values, mask=value_mask & live, other=0.0).to(tl.float32)
            if GATE == 1:
                state = state * tl.exp(tl.load(g + row + single, mask=live, other=0.0).to(tl.float32))[:, None]
            if GATE == 2:
                b_g = tl.load(g + row * K + keys, mask=key_mask & live, other=0.0).to(tl.float32)
                state = state * tl.exp(b_g)[:, None]
            if DELTA:
                b_beta = tl.load(beta + row + single, mask=live, other=0.0).to(tl.float32)
                b_v = b_beta * (b_v - tl.sum(state * b_k[:, None], axis=0))
            state += b_k[:, None] * b_v[None, :]
            b_o = tl.sum(state * b_q[:, None], axis=0)
            tl.store(o + row * V + values, b_o.to(o.dtype.element_ty), mask=value_mask & live)

    if STORE_FINAL_STATE:
        tl.store(final_state + i_bh * K * V + state_offsets, state, mask=state_mask)


@triton.jit
def recurrent_backward_kernel(
    q,
    k,
    v,
    g,
    beta,
    checkpoints,
    scratch,
    grad_o,
    grad_final_state,
    dq,
    dk,
    dv,
    dg,
    dbeta,
    grad_initial_state,
    scale,
    T,
    NUM_SEGMENTS,
    B: tl.constexpr,
    H: tl.constexpr,
    K: tl.constexpr,
    V: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    SEGMENT: tl.constexpr,
    GATE: tl.constexpr,
    DELTA: tl.constexpr,
    HAS_GRAD_FINAL_STATE: tl.constexpr,
    STORE_GRAD_INITIAL_STATE: tl.constexpr,
):
    i_v, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    num_value_blocks = tl.num_programs(0)
    keys = tl.arange(0, BK)
    values = i_v * BV + tl.arange(0, BV)
    key_mask, value_mask = keys < K, values < V
    state_mask = key_mask[:, None] & value_mask[None, :]
    state_offsets = keys[:, None] * V + values[None, :]
    block_offsets = tl.arange(0, BK)[:, None] * BV + tl.arange(0, BV)[None, :]
    single = tl.arange(0, 1)
    program = i_bh * num_value_blocks + i_v
    checkpoint_base = checkpoints + program * NUM_SEGMENTS * BK * BV
    scratch_base = scratch + program * SEGMENT * BK * BV
    # Gradients that sum over value channels are written per value block, summed by the caller.
    partial_rows = i_v * B * T * H

    grad_state = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_GRAD_FINAL_STATE:
        grad_state += tl.load(grad_final_state + i_bh * K * V + state_offsets, mask=state_mask, other=0.0)

    for segment_from_end in range(NUM_SEGMENTS):
        segment = NUM_SEGMENTS - 1 - segment_from_end
        # Re-run the segment forward, keeping the state before each step.
        state = tl.load(checkpoint_base + segment * BK * BV + block_offsets)
        for step in range(SEGMENT):
            t = segment * SEGMENT + step
            live = (t + single) < T  # [1]: the interpreter wants tensor masks
            row = (i_b * T + t) * H + i_h
            tl.store(scratch_base + step * BK * BV + block_offsets, state)
            b_k = tl.load(k + row * K + keys, mask=key_mask & live, other=0.0).to(tl.float32)
            b_v = tl.load(v + row * V + values, mask=value_mask & live, other=0.0).to(tl.float32)
            if GATE == 1:
                state = state * tl.exp(tl.load(g + row + single, mask=live, other=0.0).to(tl.float32))[:, None]
            if GATE == 2:
                b_g = tl.load(g + row * K + keys, mask=key_mask & live, other=0.0).to(tl.float32)
                state = state * tl.exp(b_g)[:, None]
            if DELTA:
                b_beta = tl.load(beta + row + single, mask=live, other=0.0).to(tl.float32)
                b_v = b_beta * (b_v - tl.sum(state * b_k[:, None], axis=0))
            state += b_k[:, None] * b_v[None, :]
        tl.debug_barrier()

        for step_from_end in range(SEGMENT):
            step = SEGMENT - 1 - step_from_end
            t = segment * SEGMENT + step
            live = (t + single) < T  # [1]: the interpreter wants tensor masks
            row = (i_b * T + t) * H + i_h
            previous = tl.load(scratch_base + step * BK * BV + block_offsets)
            b_q = tl.load(q + row * K + keys, mask=key_mask & live, other=0.0).to(tl.float32) * scale
            b_k = tl.load(k + row * K + keys, mask=key_mask & live, other=0.0).to(tl.float32)
            b_v = tl.load(v + row * V + values, mask=value_mask & live, other=0.0).to(tl.float32)
            b_do = tl.load(grad_o + row * V + values, mask=value_mask & live, other=0.0).to(tl.float32)
            decayed = previous
            if GATE == 1:
                b_a = tl.exp(tl.load(g + row + single, mask=live, other=0.0).to(tl.float32))[:, None]
                decayed = previous * b_a
            if GATE == 2:
                b_a = tl.exp(tl.load(g + row * K + keys, mask=key_mask & live, other=0.0).to(tl.float32))
                decayed = previous * b_a[:, None]
            b_u = b_v
            if DELTA:
                b_beta = tl.load(beta + row + single, mask=live, other=0.0).to(tl.float32)
                b_error = b_v - tl.sum(decayed * b_k[:, None], axis=0)
                b_u = b_beta * b_error
            state = decayed + b_k[:, None] * b_u[None, :]

            # o_t = scale S_t^T q_t
            grad_state += b_q[:, None] * b_do[None, :]
            b_dq = tl.sum(state * b_do[None, :], axis=1) * scale
            # S_t = S~ + k_t u_t^T
            b_du = tl.sum(grad_state * b_k[:, None], axis=0)
            b_dk = tl.sum(grad_state * b_u[None, :], axis=1)
            grad_decayed = grad_state
            b_dv = b_du
            if DELTA:
                # u_t = beta_t (v_t - S~^T k_t)
                b_dv = b_beta * b_du
                b_dbeta = tl.sum(b_du * b_error, axis=0, keep_dims=True)
                b_dprediction = -b_beta * b_du
                grad_decayed = grad_decayed + b_k[:, None] * b_dprediction[None, :]
                b_dk += tl.sum(decayed * b_dprediction[None, :], axis=1)
                tl.store(dbeta + partial_rows + row + single, b_dbeta, mask=live)
            tl.store(dq + (partial_rows + row) * K + keys, b_dq, mask=key_mask & live)
            tl.store(dk + (partial_rows + row) * K + keys, b_dk, mask=key_mask & live)
            tl.store(dv + row * V + values, b_dv.to(dv.dtype.element_ty), mask=value_mask & live)
            # S~ = a S_{t-1}: the gradient of log a is <dS~, S~>.
            grad_state = grad_decayed
            if GATE == 1:
                b_dg = tl.sum(tl.sum(grad_decayed * decayed, axis=1), axis=0, keep_dims=True)
                tl.store(dg + partial_rows + row + single, b_dg, mask=live)
                grad_state = grad_decayed * b_a
            if GATE == 2:
                b_dg = tl.sum(grad_decayed * decayed, axis=1)
                tl.store(dg + (partial_rows + row) * K + keys, b_dg, mask=key_mask & live)
                grad_state = grad_decayed * b_a[:, None]
        tl.debug_barrier()

    if STORE_GRAD_INITIAL_STATE:
        tl.store(grad_initial_state + i_bh * K * V + state_offsets, grad_state, mask=state_mask)


def _launch_shape(q: torch.Tensor, v: torch.Tensor) -> tuple[int, int, int, int]:
    """(BK, BV, number of value blocks, number of segments) for inputs shaped like q and v."""
    K, V, T = q.shape[-1], v.shape[-1], q.shape[1]
    if K > 256:
        raise ValueError(f"the Triton recurrence keeps [K, BV] in registers and supports K <= 256; got K={K}")
    BK = triton.next_power_of_2(K)
    BV = min(triton.next_power_of_2(V), MAX_VALUE_BLOCK)
    return BK, BV, triton.cdiv(V, BV), max(triton.cdiv(T, SEGMENT), 1)


class TritonRecurrentFunction(torch.autograd.Function):
    """The recurrence above as an autograd op; g is None, [B, T, H] or [B, T, H, K], beta None or [B, T, H]."""

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
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        g = None if g is None else g.contiguous()
        beta = None if beta is None else beta.contiguous()
        B, T, H, K = q.shape
        V = v.shape[-1]
        BK, BV, num_value_blocks, num_segments = _launch_shape(q, v)
        gate = GATE_NONE if g is None else (GATE_SCALAR if g.dim() == 3 else GATE_VECTOR)
        o = torch.empty_like(v)
        final_state = q.new_empty(B, H, K, V, dtype=torch.float32)
        checkpoints = q.new_empty(B * H * num_value_blocks, num_segments, BK, BV, dtype=torch.float32)
        initial = None if initial_state is None else initial_state.contiguous()
        recurrent_forward_kernel[(num_value_blocks, B * H)](
            q,
            k,
            v,
            q if g is None else g,  # absent tensors are never read; any pointer will do
            q if beta is None else beta,
            q if initial is None else initial,
            o,
            final_state,
            checkpoints,
            scale,
            T,
            num_segments,
            H=H,
            K=K,
            V=V,
            BK=BK,
            BV=BV,
            SEGMENT=SEGMENT,
            GATE=gate,
            DELTA=beta is not None,
            HAS_INITIAL_STATE=initial is not None,
            STORE_FINAL_STATE=True,
            num_warps=NUM_WARPS,
        )
        ctx.save_for_backward(q, k, v, g, beta, checkpoints)
        ctx.scale, ctx.gate = scale, gate
        ctx.has_initial_state = initial_state is not None
        ctx.initial_dtype = None if initial_state is None else initial_state.dtype
        return o, final_state

    @staticmethod
    def backward(ctx, grad_o: torch.Tensor, grad_final_state: torch.Tensor | None):
        q, k, v, g, beta, checkpoints = ctx.saved_tensors
        B, T, H, K = q.shape
        V = v.shape[-1]
        BK, BV, num_value_blocks, num_segments = _launch_shape(q, v)
        partial = (num_value_blocks, B, T, H)
        dq = q.new_zeros(*partial, K, dtype=torch.float32)
        dk = q.new_zeros(*partial, K, dtype=torch.float32)
        dv = torch.empty_like(v)
        dg = None
        if ctx.gate != GATE_NONE:
            dg = q.new_zeros(*partial, *g.shape[3:], dtype=torch.float32)
        dbeta = None if beta is None else q.new_zeros(*partial, dtype=torch.float32)
        grad_initial_state = q.new_empty(B, H, K, V, dtype=torch.float32) if ctx.has_initial_state else None
        scratch = q.new_empty(B * H * num_value_blocks, SEGMENT, BK, BV, dtype=torch.float32)
        recurrent_backward_kernel[(num_value_blocks, B * H)](
            q,
            k,
            v,
            q if g is None else g,
            q if beta is None else beta,
            checkpoints,
            scratch,
            grad_o.contiguous(),
            q if grad_final_state is None else grad_final_state.float().contiguous(),
            dq,
            dk,
            dv,
            dq if dg is None else dg,
            dq if dbeta is None else dbeta,
            dq if grad_initial_state is None else grad_initial_state,
            ctx.scale,
            T,
            num_segments,
            B=B,
            H=H,
            K=K,
            V=V,
            BK=BK,
            BV=BV,
            SEGMENT=SEGMENT,
            GATE=ctx.gate,
            DELTA=beta is not None,
            HAS_GRAD_FINAL_STATE=grad_final_state is not None,
            STORE_GRAD_INITIAL_STATE=grad_initial_state is not None,
            num_warps=NUM_WARPS,
        )
        return (
            dq.sum(0).to(q.dtype),
            dk.sum(0).to(k.dtype),
            dv,
            None if dg is None else dg.sum(0).to(g.dtype),
            None if dbeta is None else dbeta.sum(0).to(beta.dtype),
            None,
            None if grad_initial_state is None else grad_initial_state.to(ctx.initial_dtype),
        )


def triton_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None,
    beta: torch.Tensor | None,
    scale: float | None,
    initial_state: torch.Tensor | None,
    output_final_state: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the recurrence; beta None means plain (decayed) linear attention, otherwise the delta rule.

    q, k: [B, T, H, K]; v: [B, T, H, V]; g: None, [B, T, H] or [B, T, H, K]; beta: None or
    [B, T, H]; initial_state: [B, H, K, V]. Returns o: [B, T, H, V] and the final state or None.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    o, final_state = TritonRecurrentFunction.apply(q, k, v, g, beta, scale, initial_state)
    return o, (final_state if output_final_state else None)
