"""Every component value renders a Mixer that honours the architecture contract."""

from __future__ import annotations

import ast
import math

import pytest
import torch

from services.researcher.genome import (
    SEED_COMPONENTS,
    components_of,
    make_valid,
    name_of,
    problems,
    render,
    signature,
    validate,
)
from services.researcher.novelty import functional_fingerprint, load_mixer_class
from services.runtime.vocabulary import COMPONENTS

D_MODEL, N_HEADS, ODD_LENGTH = 32, 2, 77


EVERY_VALUE = [f"{axis}={value}" for axis, values in COMPONENTS.items() for value in values]


def designs_with_every_value() -> list[dict[str, str]]:
    """The seed with each axis moved to each of its values (made valid around that value)."""
    return [
        make_valid({**SEED_COMPONENTS, axis: value}, keep=axis)
        for axis, values in COMPONENTS.items()
        for value in values
    ]


def code_for(components: dict[str, str]) -> str:
    return render(components, name_of(components), "A test design.")


@pytest.mark.parametrize("components", designs_with_every_value(), ids=EVERY_VALUE)
def test_every_component_value_builds_a_causal_differentiable_finite_mixer(components):
    torch.manual_seed(0)
    mixer = load_mixer_class(code_for(components))(D_MODEL, N_HEADS)
    x = torch.randn(2, ODD_LENGTH, D_MODEL, requires_grad=True)

    y = mixer(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()

    # Causal: changing tokens after t leaves outputs up to t unchanged, within the first
    # kernel chunk (64 tokens) and across its boundary.
    for t in (20, 70):
        x_future_changed = x.detach().clone()
        x_future_changed[:, t + 1 :] = torch.randn(2, ODD_LENGTH - t - 1, D_MODEL)
        y_future_changed = mixer(x_future_changed)
        torch.testing.assert_close(y_future_changed[:, : t + 1], y[:, : t + 1].detach(), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(y_future_changed[:, t + 1 :], y[:, t + 1 :].detach())

    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, parameter in mixer.named_parameters():
        assert parameter.grad is not None, f"{name} receives no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("components", designs_with_every_value(), ids=EVERY_VALUE)
def test_rendered_code_imports_only_what_the_contract_allows(components):
    tree = ast.parse(code_for(components))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"torch", "math", "einops", "kernels"}
    kernel_imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "kernels"]
    assert len(kernel_imports) == 1, "the recurrence must come from the project's kernels"


def test_each_component_value_is_a_different_function_from_the_seed():
    seed_fingerprint = functional_fingerprint(code_for(SEED_COMPONENTS))
    for components in designs_with_every_value():
        if components == SEED_COMPONENTS:
            continue
        assert functional_fingerprint(code_for(components)) != seed_fingerprint, signature(components)


def test_components_survive_the_round_trip_through_code():
    for components in designs_with_every_value():
        assert components_of(code_for(components)) == components


def test_components_of_refuses_code_without_a_genome():
    with pytest.raises(ValueError, match="not rendered from a genome"):
        components_of("import torch\nclass Mixer(torch.nn.Module): pass\n")


def test_validate_names_what_is_wrong():
    with pytest.raises(ValueError, match="delta rule is only stable with unit-norm keys"):
        validate({**SEED_COMPONENTS, "qk_norm": "none"})
    with pytest.raises(ValueError, match="one decay per head"):
        validate({**SEED_COMPONENTS, "decay": "vector"})
    with pytest.raises(ValueError, match="unknown value 'cubic'"):
        validate({**SEED_COMPONENTS, "decay": "cubic"})
    assert problems({"update": "delta"})  # every axis must be present
    with pytest.raises(ValueError):
        render({**SEED_COMPONENTS, "decay": "vector"}, "bad", "never rendered")


def test_make_valid_keeps_the_requested_value_and_moves_the_rest():
    vector = make_valid({**SEED_COMPONENTS, "decay": "vector"}, keep="decay")
    assert vector["decay"] == "vector" and vector["update"] == "linear"
    negative_eigenvalues = make_valid({**SEED_COMPONENTS, "update": "linear", "beta_range": "0_2"}, keep="beta_range")
    assert negative_eigenvalues["update"] == "delta"
    # Leaving the delta rule for unnormalised keys also resets beta, which linear attention lacks.
    unnormed = make_valid({**SEED_COMPONENTS, "beta_range": "0_2", "qk_norm": "none"}, keep="qk_norm")
    assert unnormed["update"] == "linear" and unnormed["beta_range"] == "0_1"


def test_motivation_cannot_break_out_of_the_docstring():
    code = render(SEED_COMPONENTS, "seed", 'It ends here """ import os \\ and more.')
    ast.parse(code)
    assert "import os" not in [line.strip() for line in code.splitlines()]


def test_sliding_window_path_matches_dense_masked_attention_across_blocks():
    code = code_for(make_valid({**SEED_COMPONENTS, "path": "local_global"}, keep="path"))
    namespace: dict[str, object] = {}
    exec(compile(code, "<candidate>", "exec"), namespace)
    sliding_window_attention = namespace["sliding_window_attention"]
    torch.manual_seed(0)
    B, T, H, D, window = 2, ODD_LENGTH, 2, 8, 8
    q, k, v = (torch.randn(B, T, H, D) for _ in range(3))

    scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(D)
    position = torch.arange(T)
    distance = position[:, None] - position[None, :]
    visible = (distance >= 0) & (distance < window)
    expected = torch.einsum("bhij,bjhd->bihd", scores.masked_fill(~visible, float("-inf")).softmax(-1), v)

    torch.testing.assert_close(sliding_window_attention(q, k, v, window), expected)
