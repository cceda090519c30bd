"""Shared set-up for the researcher's tests.

Rendered candidates import their recurrence from the project's ``kernels`` package.
Until that package exports its entry points, these tests put a step-by-step reference
(the recurrences written out one token at a time, nothing else) in its place, and only
for the tests in this folder.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch


def _scale_of(q: torch.Tensor, scale: float | None) -> float:
    return q.shape[-1] ** -0.5 if scale is None else scale


def _linear_attn(q, k, v, g=None, scale=None, initial_state=None, output_final_state=False):
    B, T, H, K = q.shape
    S = q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state
    outputs = []
    for t in range(T):
        if g is not None:
            decay = g[:, t].exp()  # [B, H] or [B, H, K]
            S = S * (decay[..., None, None] if decay.dim() == 2 else decay[..., None])
        S = S + k[:, t, :, :, None] * v[:, t, :, None, :]
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * _scale_of(q, scale), S))
    return torch.stack(outputs, dim=1), (S if output_final_state else None)


def _gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False):
    B, T, H, K = q.shape
    S = q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state
    outputs = []
    for t in range(T):
        if g is not None:
            S = S * g[:, t].exp()[..., None, None]
        error = v[:, t] - torch.einsum("bhk,bhkv->bhv", k[:, t], S)
        S = S + k[:, t, :, :, None] * (beta[:, t, :, None] * error)[:, :, None, :]
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * _scale_of(q, scale), S))
    return torch.stack(outputs, dim=1), (S if output_final_state else None)


def _delta_rule(q, k, v, beta, scale=None, initial_state=None, output_final_state=False):
    return _gated_delta_rule(q, k, v, None, beta, scale, initial_state, output_final_state)


@pytest.fixture(autouse=True, scope="session")
def kernels_available():
    """The real ``kernels`` when it is importable, the step-by-step reference otherwise."""
    try:
        from kernels import chunk_delta_rule, chunk_gated_delta_rule, chunk_linear_attn  # noqa: F401
    except ImportError:
        pass
    else:
        yield
        return
    saved = sys.modules.get("kernels")
    reference = types.ModuleType("kernels")
    reference.chunk_linear_attn = _linear_attn
    reference.chunk_delta_rule = _delta_rule
    reference.chunk_gated_delta_rule = _gated_delta_rule
    sys.modules["kernels"] = reference
    yield
    if saved is None:
        del sys.modules["kernels"]
    else:
        sys.modules["kernels"] = saved


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # Two cores are shared by several engineers; one thread keeps the suite fast and steady.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
