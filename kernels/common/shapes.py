"""Argument checks and chunk padding shared by the ops."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    per_head_decay: bool = False,
) -> None:
    """Fail early, with the shapes in the message, when arguments break the [B, T, H, K] conventions.

    per_head_decay: g must be [B, T, H] (the delta rules decay the whole state by one factor).
    """
    if q.dim() != 4 or k.shape != q.shape:
        raise ValueError(f"q and k must both be [B, T, H, K]; got q {tuple(q.shape)}, k {tuple(k.shape)}")
    B, T, H, K = q.shape
    if v.dim() != 4 or v.shape[:3] != (B, T, H):
        raise ValueError(f"v must be [B, T, H, V] matching q {tuple(q.shape)}; got {tuple(v.shape)}")
    if g is not None and g.shape not in ((B, T, H), (B, T, H, K)):
        raise ValueError(f"g must be [B, T, H] or [B, T, H, K] = {(B, T, H, K)}; got {tuple(g.shape)}")
    if per_head_decay and g is not None and g.dim() != 3:
        raise ValueError(f"this op takes one log-decay per head, g: [B, T, H]; got {tuple(g.shape)}")
    if beta is not None and beta.shape != (B, T, H):
        raise ValueError(f"beta must be [B, T, H] = {(B, T, H)}; got {tuple(beta.shape)}")
    if initial_state is not None and initial_state.shape != (B, H, K, v.shape[-1]):
        raise ValueError(
            f"initial_state must be [B, H, K, V] = {(B, H, K, v.shape[-1])}; got {tuple(initial_state.shape)}"
        )


def pad_time(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad dim 1 (time) of `x` up to a multiple of `multiple`.

    Zero keys, values, betas and log-decays leave the state untouched, so padded steps change nothing.
    """
    pad = (-x.shape[1]) % multiple
    if pad == 0:
        return x
    widths = [0, 0] * (x.dim() - 2) + [0, pad]
    return F.pad(x, widths)
