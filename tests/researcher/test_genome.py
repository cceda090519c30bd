"""The genome: every baseline reproduced exactly, every value a working, different Mixer."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from services.engineer.baselines import BASELINES as BASELINE_FILES
from services.engineer.baselines import baseline_code
from services.engineer.harness import check_code
from services.engineer.profiles import get_profile
from services.researcher.genome import (
    BASELINES,
    DEFAULTS,
    NOT_SEARCHED,
    SEED_COMPONENTS,
    canonical,
    components_of,
    design_space_size,
    fit_budget,
    make_valid,
    name_of,
    param_ratio,
    problems,
    relevant_axes,
    render,
    signature,
    validate,
)
from services.researcher.novelty import functional_fingerprint, load_mixer_class
from services.runtime.vocabulary import COMPONENTS, SCALES

D_MODEL, N_HEADS, ODD_LENGTH = 32, 2, 77
TINY = get_profile("tiny")

# Designs in which each axis applies, so that every value can be shown to matter somewhere.
CONTEXTS = [
    SEED_COMPONENTS,
    BASELINES["gated_deltanet"],
    BASELINES["gla"],
    BASELINES["mamba2"],
    {**BASELINES["retnet"], "decay": "mixed", "path": "local_global"},
]


def design_with(axis: str, value: str) -> dict[str, str]:
    """The first context in which ``axis=value`` applies, moved to it (and made valid around it)."""
    for context in CONTEXTS:
        design = make_valid({**context, axis: value}, keep=axis)
        if design[axis] == value and axis in relevant_axes(design):
            return design
    raise AssertionError(f"no context makes {axis}={value} apply")


EVERY_VALUE = [(axis, value) for axis, values in COMPONENTS.items() for value in values]
IDS = [f"{axis}={value}" for axis, value in EVERY_VALUE]


def code_for(components: dict[str, str]) -> str:
    return render(components, name_of(components), "A test design.")


@pytest.mark.parametrize("name", BASELINE_FILES)
def test_every_baseline_is_a_genome_with_the_same_function(name):
    rendered = code_for(BASELINES[name])
    assert functional_fingerprint(rendered) == functional_fingerprint(baseline_code(name))
    # The baseline file itself is read as that genome (by its text, never by running it).
    assert components_of(baseline_code(name)) == canonical(BASELINES[name])
    assert components_of(rendered) == canonical(BASELINES[name])


def test_a_changed_initialisation_is_a_different_function():
    gdn = BASELINES["gated_deltanet"]
    reference = functional_fingerprint(code_for(gdn))
    for axis, value in (("dt_max", "0.3"), ("a_max", "32"), ("init", "xavier")):
        assert functional_fingerprint(code_for({**gdn, axis: value})) != reference, axis


@pytest.mark.parametrize(("axis", "value"), EVERY_VALUE, ids=IDS)
def test_every_value_builds_a_causal_differentiable_finite_mixer(axis, value):
    components = design_with(axis, value)
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


@pytest.mark.parametrize(("axis", "value"), EVERY_VALUE, ids=IDS)
def test_rendered_code_imports_only_what_the_contract_allows(axis, value):
    components = design_with(axis, value)
    tree = ast.parse(code_for(components))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"torch", "math", "einops", "kernels"}
    ops = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "kernels"
           for alias in node.names}
    # Every recurrence comes from the project's kernels; only softmax attention has none.
    assert len(ops - {"causal_conv1d"}) == (0 if components["update"] == "softmax" else 1)
    # The short convolution runs through the kernels' op whenever the design has one.
    assert ("causal_conv1d" in ops) == (components["conv"] == "short")


def test_every_value_is_a_different_function_from_its_context():
    for axis, value in EVERY_VALUE:
        components = design_with(axis, value)
        for context in CONTEXTS:
            if canonical(context) != components and make_valid({**context, axis: value}, keep=axis) == components:
                assert functional_fingerprint(code_for(components)) != functional_fingerprint(code_for(context)), (
                    f"{axis}={value}"
                )
                break


def test_components_survive_the_round_trip_through_code():
    for axis, value in EVERY_VALUE:
        components = design_with(axis, value)
        assert components_of(code_for(components)) == components


def test_axes_that_do_not_apply_are_held_at_their_default():
    linear = {**SEED_COMPONENTS, "update": "linear", "qk_norm": "none", "beta_range": "0_2", "householder": "3"}
    assert canonical(linear)["beta_range"] == DEFAULTS["beta_range"]
    assert canonical(linear)["householder"] == "1"
    assert signature(linear) == signature(canonical(linear))
    # The dt range matters only with a data-dependent decay.
    assert signature({**SEED_COMPONENTS, "dt_max": "1"}) == signature(SEED_COMPONENTS)
    assert signature({**BASELINES["gated_deltanet"], "dt_max": "1"}) != signature(BASELINES["gated_deltanet"])


def test_components_of_refuses_code_without_a_genome():
    with pytest.raises(ValueError, match="not rendered from a genome"):
        components_of("import torch\nclass Mixer(torch.nn.Module): pass\n")


def test_validate_names_what_is_wrong():
    with pytest.raises(ValueError, match="delta rule is only stable with unit-norm keys"):
        validate({**SEED_COMPONENTS, "qk_norm": "none"})
    with pytest.raises(ValueError, match="one decay per head"):
        validate({**SEED_COMPONENTS, "decay": "vector"})
    with pytest.raises(ValueError, match="own keys"):
        validate({**SEED_COMPONENTS, "householder": "2", "qk_heads": "shared"})
    with pytest.raises(ValueError, match="unknown value 'cubic'"):
        validate({**SEED_COMPONENTS, "decay": "cubic"})
    assert problems({"update": "delta"})  # every axis must be present
    with pytest.raises(ValueError):
        render({**SEED_COMPONENTS, "decay": "vector"}, "bad", "never rendered")


def test_make_valid_keeps_the_requested_values_and_moves_the_rest():
    vector = make_valid({**SEED_COMPONENTS, "decay": "vector"}, keep="decay")
    assert vector["decay"] == "vector" and vector["update"] == "linear"
    kept_delta = make_valid({**SEED_COMPONENTS, "decay": "vector"}, keep="update")
    assert kept_delta["update"] == "delta" and kept_delta["decay"] == "scalar"
    product = make_valid({**SEED_COMPONENTS, "path": "local_global", "householder": "2"}, keep="householder")
    assert product["householder"] == "2" and product["path"] == "single"
    normalised = make_valid({**BASELINES["linear_attention"], "feature_map": "silu"}, keep="feature_map")
    assert normalised["feature_map"] == "silu" and normalised["normalizer"] == "none"
    both = make_valid({**SEED_COMPONENTS, "path": "local_global", "householder": "2"}, keep={"path", "householder"})
    assert not problems(both)


def test_over_budget_designs_are_fitted_along_the_width_scales():
    product = make_valid({**SEED_COMPONENTS, "householder": "3"}, keep="householder")
    assert param_ratio(product, TINY.d_model, TINY.n_heads) > 1.5
    fitted = fit_budget(product, {"householder"}, TINY.d_model, TINY.n_heads)
    assert fitted is not None and fitted["householder"] == "3"
    assert 0.5 <= param_ratio(fitted, TINY.d_model, TINY.n_heads) <= 1.5
    # Widening the values while keeping every width is impossible within the budget.
    assert fit_budget({**BASELINES["gated_deltanet"], "expand_v": "2"}, {"expand_v", "expand_k"},
                      TINY.d_model, TINY.n_heads) is None


def test_the_design_space_is_far_beyond_the_papers_switches():
    searched, expressible = design_space_size(searched_only=True), design_space_size()
    assert 10**9 < searched < expressible
    assert design_space_size(searched_only=True) == searched  # a count, not a sample


def test_motivation_cannot_break_out_of_the_docstring():
    code = render(SEED_COMPONENTS, "seed", 'It ends here """ import os \\ and more.')
    ast.parse(code)
    assert "import os" not in [line.strip() for line in code.splitlines()]


def test_sliding_window_path_matches_dense_masked_attention_across_blocks():
    code = code_for(design_with("path", "local_global"))
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


def test_deltaproduct_takes_each_tokens_householder_steps_in_order():
    """The rendered DeltaProduct against the recurrence written out step by step."""
    steps = 2
    components = make_valid({**BASELINES["gated_deltanet"], "householder": str(steps)}, keep="householder")
    torch.manual_seed(0)
    mixer = load_mixer_class(code_for(components))(D_MODEL, N_HEADS)
    x = torch.randn(1, 9, D_MODEL)
    B, T, _ = x.shape
    H = mixer.n_heads

    q, k, v = mixer.q_conv(mixer.q_proj(x)), mixer.k_conv(mixer.k_proj(x)), mixer.v_conv(mixer.v_proj(x))
    q = F.normalize(q.view(B, T, H, -1), dim=-1)
    k = F.normalize(k.view(B, T, steps, H, -1), dim=-1)  # step-major, as the projection lays them out
    v = v.view(B, T, steps, H, -1)
    beta = mixer.b_proj(x).sigmoid().view(B, T, steps, H)
    alpha = torch.exp(-mixer.A_log.exp() * F.softplus(mixer.a_proj(x) + mixer.dt_bias))  # [B, T, H]
    state = torch.zeros(B, H, q.shape[-1], v.shape[-1])
    outputs = []
    for t in range(T):
        state = alpha[:, t, :, None, None] * state  # the state decays once per token
        for j in range(steps):
            kj, vj, bj = k[:, t, j], v[:, t, j], beta[:, t, j, :, None]
            stored = torch.einsum("bhkv,bhk->bhv", state, kj)
            state = state + torch.einsum("bhk,bhv->bhkv", kj, bj * (vj - stored))
        outputs.append(torch.einsum("bhkv,bhk->bhv", state, q[:, t]) * q.shape[-1] ** -0.5)
    o = mixer.o_norm(torch.stack(outputs, dim=1)).reshape(B, T, -1)
    expected = mixer.o_proj(o * F.silu(mixer.g_proj(x)))

    torch.testing.assert_close(mixer(x), expected, rtol=1e-4, atol=1e-5)


PROBE_STARTS = [
    SEED_COMPONENTS,
    BASELINES["linear_attention"],
    {**BASELINES["gated_deltanet"], "decay": "mixed"},
    BASELINES["gla"],
    BASELINES["mamba2"],
    {**SEED_COMPONENTS, "path": "local_global"},
]


def _applies(design: dict[str, str], axis: str, value: str) -> bool:
    return design[axis] == value and axis in relevant_axes(design)


def designs_covering_every_searched_value() -> list[dict[str, str]]:
    """Few designs, within the tiny profile's budget, that between them apply every value the
    search can propose (defaults are in every design): each probe run costs seconds."""
    values = {axis: [v for v in vs if v != DEFAULTS[axis] and v not in NOT_SEARCHED.get(axis, ())]
              for axis, vs in COMPONENTS.items()}
    pending = {(axis, value) for axis, vs in values.items() for value in vs}
    designs = []
    while pending:
        best: tuple[dict[str, str], set[tuple[str, str]]] | None = None
        for start in PROBE_STARTS:
            design, kept = canonical(start), set()
            for axis in sorted(COMPONENTS, key=lambda a: a in SCALES):  # structure first: it makes scales apply
                for value in values[axis]:
                    if (axis, value) not in pending or axis in kept:
                        continue
                    moved = make_valid({**design, axis: value}, keep=kept | {axis})
                    fitted = fit_budget(moved, kept | {axis}, TINY.d_model, TINY.n_heads)
                    if fitted is None or not _applies(fitted, axis, value):
                        continue
                    if all(fitted[a] == design[a] for a in kept):
                        design, kept = fitted, kept | {axis}
                        break
            covered = {(a, v) for a, v in pending if _applies(design, a, v)}
            if best is None or len(covered) > len(best[1]):
                best = (design, covered)
        assert best is not None and best[1], f"no design applies {sorted(pending)}"
        pending -= best[1]
        designs.append(best[0])
    return designs


@pytest.mark.slow
def test_every_searched_value_passes_the_engineers_probes():
    """Every value the search can propose, rendered and run through the engineer's sandboxed
    probes (build, forward/backward, finite, causal, complexity, parameter budget) at tiny."""
    designs = designs_covering_every_searched_value()
    assert len(designs) <= 16  # each costs a sandboxed run of several seconds
    readme = Path(__file__).resolve().parents[2] / "services" / "researcher" / "README.md"
    assert f"in {len(designs)} designs" in readme.read_text()
    for design in designs:
        report = check_code(code_for(design), profile="tiny")
        assert report["ok"], (signature(design), report["errors"])
