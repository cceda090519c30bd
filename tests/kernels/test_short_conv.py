"""causal_conv1d: the shifted multiply-add form against the Conv1d specification, forward and gradients."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kernels import causal_conv1d
from kernels.common.testing import assert_all_close, relative_error
from kernels.short_conv import naive_causal_conv1d, torch_causal_conv1d


def conv_inputs(B: int, T: int, D: int, W: int, with_initial_state: bool) -> dict[str, torch.Tensor | None]:
    return {
        "x": torch.randn(B, T, D, requires_grad=True),
        "weight": (torch.randn(D, W) / W**0.5).requires_grad_(),
        "initial_state": torch.randn(B, D, W - 1, requires_grad=True) if with_initial_state else None,
    }


def errors_against_naive(inputs: dict, activation: str | None) -> dict[str, float]:
    leaves = {name: x for name, x in inputs.items() if x is not None}
    results = []
    grad_y = grad_state = None
    for run in (naive_causal_conv1d, torch_causal_conv1d):
        y, state = run(inputs["x"], inputs["weight"], activation, inputs["initial_state"], output_final_state=True)
        if grad_y is None:
            grad_y, grad_state = torch.randn_like(y), torch.randn_like(state)
        grads = torch.autograd.grad((y * grad_y).sum() + (state * grad_state).sum(), list(leaves.values()))
        results.append({"y": y.detach(), "final_state": state.detach(),
                        **{f"d{name}": grad for name, grad in zip(leaves, grads, strict=True)}})
    expected, actual = results
    return {name: relative_error(actual[name], expected[name]) for name in expected}


@pytest.mark.parametrize("T", [63, 100, 2])
@pytest.mark.parametrize("with_initial_state", [False, True])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_causal_conv1d_torch_matches_naive(T: int, with_initial_state: bool, activation: str | None) -> None:
    inputs = conv_inputs(B=3, T=T, D=24, W=4, with_initial_state=with_initial_state)
    assert_all_close(errors_against_naive(inputs, activation))


def test_causal_conv1d_is_the_baselines_padded_conv1d_then_silu() -> None:
    # The baselines' ShortConvolution: Conv1d(D, D, W, groups=D, padding=W - 1) cut to T, then SiLU.
    B, T, D, W = 2, 37, 16, 4
    conv = nn.Conv1d(D, D, W, groups=D, padding=W - 1, bias=False)
    x = torch.randn(B, T, D, requires_grad=True)
    expected = F.silu(conv(x.transpose(1, 2))[..., :T].transpose(1, 2))
    y, _ = causal_conv1d(x, conv.weight[:, 0], activation="silu")
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    grad_y = torch.randn_like(y)
    expected_grads = torch.autograd.grad((expected * grad_y).sum(), (x, conv.weight))
    grads = torch.autograd.grad((y * grad_y).sum(), (x, conv.weight))
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-6)


def test_causal_conv1d_continues_from_its_final_state() -> None:
    x, weight = torch.randn(2, 50, 8), torch.randn(8, 4)
    whole, _ = causal_conv1d(x, weight)
    prefix, state = causal_conv1d(x[:, :30], weight, output_final_state=True)
    suffix, _ = causal_conv1d(x[:, 30:], weight, initial_state=state)
    torch.testing.assert_close(torch.cat([prefix, suffix], dim=1), whole, rtol=1e-5, atol=1e-6)


def test_causal_conv1d_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"weight must be \[D, W\]"):
        causal_conv1d(torch.randn(1, 5, 8), torch.randn(4, 4))
    with pytest.raises(ValueError, match="activation"):
        causal_conv1d(torch.randn(1, 5, 8), torch.randn(8, 4), activation="relu")
