"""Argument checks of the short convolution."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

ACTIVATIONS: dict[str | None, Callable[[torch.Tensor], torch.Tensor]] = {None: lambda y: y, "silu": F.silu}


def check_conv_inputs(
    x: torch.Tensor, weight: torch.Tensor, activation: str | None, initial_state: torch.Tensor | None
) -> None:
    """Fail early, with the shapes in the message, when arguments break the [B, T, D] / [D, W] conventions."""
    if x.dim() != 3:
        raise ValueError(f"x must be [B, T, D]; got {tuple(x.shape)}")
    B, _, D = x.shape
    if weight.dim() != 2 or weight.shape[0] != D or weight.shape[1] < 1:
        raise ValueError(f"weight must be [D, W] with D = {D}; got {tuple(weight.shape)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS, key=str)}; got {activation!r}")
    W = weight.shape[1]
    if initial_state is not None and initial_state.shape != (B, D, W - 1):
        raise ValueError(f"initial_state must be [B, D, W - 1] = {(B, D, W - 1)}; got {tuple(initial_state.shape)}")
