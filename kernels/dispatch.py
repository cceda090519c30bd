"""The public entry points, and the one place that chooses which implementation runs them.

Each op has three implementations: `naive` (the step-by-step specification), `torch` (chunked
PyTorch) and `triton` (Triton kernels with a hand-written backward). By default CUDA tensors go to
`triton` and everything else to `torch`; the `backend=` keyword, or else the environment variable
ASI_KERNEL_BACKEND, forces one. Triton is imported only when it is chosen, so CPU-only installs
without it work.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Literal

import torch

from kernels.delta_rule.chunk import torch_chunk_delta_rule
from kernels.delta_rule.naive import naive_recurrent_delta_rule
from kernels.gated_delta_rule.chunk import torch_chunk_gated_delta_rule
from kernels.gated_delta_rule.naive import naive_recurrent_gated_delta_rule
from kernels.linear_attn.chunk import torch_chunk_linear_attn
from kernels.linear_attn.naive import naive_recurrent_linear_attn
from kernels.short_conv.naive import naive_causal_conv1d
from kernels.short_conv.shift import torch_causal_conv1d

Backend = Literal["naive", "torch", "triton"]
BACKENDS: tuple[Backend, ...] = ("naive", "torch", "triton")
BACKEND_ENV_VAR = "ASI_KERNEL_BACKEND"

Implementation = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]

# The Triton implementations per (op, form), as (module, function), loaded on first use.
_TRITON: dict[tuple[str, str], tuple[str, str]] = {
    ("linear_attn", "chunk"): ("kernels.linear_attn.triton_chunk", "triton_chunk_linear_attn"),
    ("linear_attn", "recurrent"): ("kernels.linear_attn.triton_recurrent", "triton_recurrent_linear_attn"),
    ("delta_rule", "chunk"): ("kernels.delta_rule.triton_chunk", "triton_chunk_delta_rule"),
    ("delta_rule", "recurrent"): ("kernels.delta_rule.triton_recurrent", "triton_recurrent_delta_rule"),
    ("gated_delta_rule", "chunk"): ("kernels.gated_delta_rule.triton_chunk", "triton_chunk_gated_delta_rule"),
    ("gated_delta_rule", "recurrent"): (
        "kernels.gated_delta_rule.triton_recurrent",
        "triton_recurrent_gated_delta_rule",
    ),
}
_CHUNK: dict[str, Implementation] = {
    "linear_attn": torch_chunk_linear_attn,
    "delta_rule": torch_chunk_delta_rule,
    "gated_delta_rule": torch_chunk_gated_delta_rule,
}
_NAIVE: dict[str, Implementation] = {
    "linear_attn": naive_recurrent_linear_attn,
    "delta_rule": naive_recurrent_delta_rule,
    "gated_delta_rule": naive_recurrent_gated_delta_rule,
}


def choose_backend(x: torch.Tensor, backend: str | None = None) -> Backend:
    """The backend for inputs like `x`: `backend`, else $ASI_KERNEL_BACKEND, else by device."""
    choice = backend or os.environ.get(BACKEND_ENV_VAR) or ("triton" if x.is_cuda else "torch")
    if choice not in BACKENDS:
        raise ValueError(f"unknown kernel backend {choice!r}; expected one of {BACKENDS}")
    if choice == "triton" and not x.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("the triton backend needs CUDA tensors, or TRITON_INTERPRET=1 before Triton loads")
    return choice


def implementation(op: str, form: Literal["chunk", "recurrent"], backend: Backend) -> Implementation:
    """The function that runs `op` in `form` on `backend`.

    On Triton the chunked form is the chunked PyTorch op with its chunk-to-chunk passes as Triton
    kernels (but linear attention with a per-channel decay runs the Triton recurrence); the
    recurrent form is the Triton recurrence. PyTorch's recurrent form is the step-by-step
    specification itself.
    """
    if backend == "triton":
        module, name = _TRITON[op, form]
        return getattr(importlib.import_module(module), name)
    if backend == "torch" and form == "chunk":
        return _CHUNK[op]
    return _NAIVE[op]


def chunk_linear_attn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    backend: Backend | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Linear attention, optionally decayed: S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, o_t = scale S_t^T q_t.

    q, k: [B, T, H, K]; v: [B, T, H, V]; g: None, [B, T, H] (RetNet's fixed or Mamba2's scalar decay)
    or [B, T, H, K] (GLA's per-channel decay), in log space; initial_state: [B, H, K, V]; scale
    defaults to K ** -0.5. Returns o: [B, T, H, V] and the final state [B, H, K, V] (float32) or None.
    """
    run = implementation("linear_attn", "chunk", choose_backend(q, backend))
    return run(q, k, v, g, scale=scale, initial_state=initial_state, output_final_state=output_final_state)


def recurrent_linear_attn(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    backend: Backend | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`chunk_linear_attn` computed step by step (the form for decoding a few tokens at a time)."""
    run = implementation("linear_attn", "recurrent", choose_backend(q, backend))
    return run(q, k, v, g, scale=scale, initial_state=initial_state, output_final_state=output_final_state)


def chunk_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    backend: Backend | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """DeltaNet: S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, o_t = scale S_t^T q_t.

    q, k: [B, T, H, K] (k l2-normalised by the caller); v: [B, T, H, V]; beta: [B, T, H] in (0, 2);
    initial_state: [B, H, K, V]. Returns o: [B, T, H, V] and the final state [B, H, K, V] or None.
    """
    run = implementation("delta_rule", "chunk", choose_backend(q, backend))
    return run(q, k, v, beta, scale=scale, initial_state=initial_state, output_final_state=output_final_state)


def recurrent_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    backend: Backend | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`chunk_delta_rule` computed step by step (the form for decoding a few tokens at a time)."""
    run = implementation("delta_rule", "recurrent", choose_backend(q, backend))
    return run(q, k, v, beta, scale=scale, initial_state=initial_state, output_final_state=output_final_state)


def chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    backend: Backend | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated DeltaNet: S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, o_t = scale S_t^T q_t

    q, k: [B, T, H, K] (k l2-normalised by the caller); v: [B, T, H, V]; g: [B, T, H] log-decay;
    beta: [B, T, H] in (0, 2); initial_state: [B, H, K, V]. Returns o: [B, T, H, V] and the final
    state [B, H, K, V] (float32) or None.
    """
    run = implementation("gated_delta_rule", "chunk", choose_backend(q, backend))
    return run(q, k, v, g, beta, scale=scale, initial_state=initial_state, output_final_state=output_final_state)


def recurrent_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    backend: Backend | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`chunk_gated_delta_rule` computed step by step (the form for decoding a few tokens at a time)."""
    run = implementation("gated_delta_rule", "recurrent", choose_backend(q, backend))
    return run(q, k, v, g, beta, scale=scale, initial_state=initial_state, output_final_state=output_final_state)


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    activation: str | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    backend: Backend | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Depthwise causal short convolution: y_t = act(sum_{i < W} weight[:, i] * x_{t - W + 1 + i}).

    x: [B, T, D]; weight: [D, W] (a depthwise `nn.Conv1d`'s weight without its middle axis);
    activation: None or "silu"; initial_state: [B, D, W - 1], the inputs before x. Returns y:
    [B, T, D] and the final state [B, D, W - 1] or None. `naive` is `Conv1d` with left padding; `torch`
    and `triton` run the shifted multiply-adds (plain PyTorch ops, fast on either device).
    """
    run = naive_causal_conv1d if choose_backend(x, backend) == "naive" else torch_causal_conv1d
    return run(x, weight, activation, initial_state=initial_state, output_final_state=output_final_state)
