"""The causal short convolution as W shifted multiply-adds in [B, T, D], with a hand-written backward.

`Conv1d` wants channels before time, so a mixer working in [B, T, D] pays two transposing copies
per call, the depthwise kernel and a separate SiLU on top; here each of the W taps is one broadcast
multiply-add of a time-shifted slice of the input into the output, contiguous along D, with no
padded copy, and the SiLU's backward is fused into the convolution's. Measured against
`naive_causal_conv1d` (the padded `Conv1d`) in `python -m kernels.bench --cases short_conv`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.short_conv.shapes import check_conv_inputs


def _conv(x: torch.Tensor, taps: torch.Tensor, history: torch.Tensor | None) -> torch.Tensor:
    """sum_i taps[i] * x_{t - W + 1 + i} over x: [B, T, D], taps: [W, D]; history: [B, W - 1, D] or None (zeros)."""
    T, W = x.shape[1], taps.shape[0]
    y = x * taps[W - 1]
    for i in range(W - 1):
        shift = W - 1 - i  # tap i reads the input `shift` steps back
        if shift < T:
            y[:, shift:].addcmul_(x[:, : T - shift], taps[i])
        if history is not None:  # the first `shift` outputs read the inputs before x
            y[:, : min(shift, T)].addcmul_(history[:, i : i + min(shift, T)], taps[i])
    return y


class ShortConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, silu, history):  # noqa: ANN001, ANN205 - autograd's signature
        taps = weight.to(x.dtype).t().contiguous()  # [W, D]
        y = _conv(x, taps, history)
        ctx.save_for_backward(x, weight, history, y if silu else None)
        ctx.silu = silu
        return F.silu(y) if silu else y

    @staticmethod
    def backward(ctx, grad_out):  # noqa: ANN001, ANN205
        x, weight, history, pre_activation = ctx.saved_tensors
        grad_y = torch.ops.aten.silu_backward(grad_out, pre_activation) if ctx.silu else grad_out
        T, W = x.shape[1], weight.shape[1]
        taps = weight.to(grad_y.dtype).t()
        grad_x = grad_y * taps[W - 1]
        grad_taps = grad_y.new_empty(W, weight.shape[0])
        grad_taps[W - 1] = (grad_y * x).sum((0, 1))
        grad_history = None if history is None else torch.zeros_like(history)
        for i in range(W - 1):
            shift = W - 1 - i
            tap = grad_y.new_zeros(weight.shape[0])
            if shift < T:
                grad_x[:, : T - shift].addcmul_(grad_y[:, shift:], taps[i])
                tap += (grad_y[:, shift:] * x[:, : T - shift]).sum((0, 1))
            if history is not None:
                span = min(shift, T)
                grad_history[:, i : i + span].addcmul_(grad_y[:, :span], taps[i])
                tap += (grad_y[:, :span] * history[:, i : i + span]).sum((0, 1))
            grad_taps[i] = tap
        return grad_x, grad_taps.t().to(weight.dtype), None, grad_history


def torch_causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    activation: str | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same contract as `naive_causal_conv1d`. x: [B, T, D]; weight: [D, W]; initial_state: [B, D, W - 1]."""
    check_conv_inputs(x, weight, activation, initial_state)
    W = weight.shape[1]
    history = None if initial_state is None else initial_state.transpose(1, 2).to(x.dtype)  # [B, W - 1, D]
    y = ShortConvFunction.apply(x, weight, activation == "silu", history)
    final_state = None
    if output_final_state:
        before = x.new_zeros(x.shape[0], W - 1, x.shape[2]) if history is None else history
        final_state = torch.cat([before, x], dim=1)[:, x.shape[1] :].transpose(1, 2)
    return y, final_state
