"""The specification of the causal short convolution: `Conv1d` with left padding, in float32."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.short_conv.shapes import ACTIVATIONS, check_conv_inputs


def naive_causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    activation: str | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """y_t = act(sum_{i < W} weight[:, i] * x_{t - W + 1 + i}), per channel (depthwise), x_s = 0 for s < 0.

    x: [B, T, D]; weight: [D, W] (`nn.Conv1d(D, D, W, groups=D).weight[:, 0]`); activation: None or
    "silu"; initial_state: [B, D, W - 1], the inputs before x (a running decode). Returns y: [B, T, D]
    in x's dtype and the final state [B, D, W - 1] (the last W - 1 inputs) or None.
    """
    check_conv_inputs(x, weight, activation, initial_state)
    B, T, D = x.shape
    W = weight.shape[1]
    history = x.new_zeros(B, D, W - 1) if initial_state is None else initial_state.to(x.dtype)
    padded = torch.cat([history, x.transpose(1, 2)], dim=-1).float()  # [B, D, W - 1 + T]
    y = F.conv1d(padded, weight.float()[:, None, :], groups=D).transpose(1, 2)  # [B, T, D]
    y = ACTIVATIONS[activation](y).to(x.dtype)
    return y, (padded[..., T:].to(x.dtype) if output_final_state else None)
