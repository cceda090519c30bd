"""chunk_gated_delta_rule and recurrent_gated_delta_rule: every implementation against naive."""

import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

from kernels import chunk_gated_delta_rule, recurrent_gated_delta_rule
from kernels.common.testing import assert_all_close, compare, compile_for_cuda, make_inputs
from kernels.gated_delta_rule import naive_recurrent_gated_delta_rule, torch_chunk_gated_delta_rule


@pytest.mark.parametrize("T", [63, 100])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_chunk_gated_delta_rule_torch_matches_naive(T: int, with_initial_state: bool) -> None:
    inputs = make_inputs("gated_delta_rule", B=2, T=T, H=2, K=32, V=16, with_initial_state=with_initial_state)
    chunked = partial(chunk_gated_delta_rule, backend="torch")
    assert_all_close(compare(chunked, naive_recurrent_gated_delta_rule, inputs))


@pytest.mark.parametrize("chunk_size", [16, 64])
def test_chunk_gated_delta_rule_torch_any_chunk_size(chunk_size: int) -> None:
    inputs = make_inputs("gated_delta_rule", B=1, T=100, H=2, K=16, V=32, with_initial_state=True)
    chunked = partial(torch_chunk_gated_delta_rule, chunk_size=chunk_size)
    assert_all_close(compare(chunked, naive_recurrent_gated_delta_rule, inputs))


def test_chunk_gated_delta_rule_defaults_to_torch_on_cpu_and_honours_the_environment(monkeypatch) -> None:
    inputs = make_inputs("gated_delta_rule", B=1, T=20, H=1, K=8, V=8)
    arguments = [inputs[name] for name in ("q", "k", "v", "g", "beta")]
    monkeypatch.delenv("ASI_KERNEL_BACKEND", raising=False)
    default, _ = chunk_gated_delta_rule(*arguments)
    chunked, _ = torch_chunk_gated_delta_rule(*arguments)
    assert torch.equal(default, chunked)
    monkeypatch.setenv("ASI_KERNEL_BACKEND", "naive")
    forced, _ = chunk_gated_delta_rule(*arguments)
    naive, _ = naive_recurrent_gated_delta_rule(*arguments)
    assert torch.equal(forced, naive)


def test_chunk_gated_delta_rule_returns_no_state_unless_asked() -> None:
    inputs = make_inputs("gated_delta_rule", B=1, T=10, H=1, K=8, V=8)
    o, final_state = chunk_gated_delta_rule(*(inputs[name] for name in ("q", "k", "v", "g", "beta")))
    assert o.shape == (1, 10, 1, 8) and final_state is None


def test_recurrent_gated_delta_rule_continues_from_a_chunked_prefix() -> None:
    inputs = make_inputs("gated_delta_rule", B=2, T=70, H=2, K=16, V=16)
    q, k, v, g, beta = (inputs[name].detach() for name in ("q", "k", "v", "g", "beta"))
    whole, whole_state = chunk_gated_delta_rule(q, k, v, g, beta, output_final_state=True)
    prefix, state = chunk_gated_delta_rule(*(x[:, :50] for x in (q, k, v, g, beta)), output_final_state=True)
    suffix, final_state = recurrent_gated_delta_rule(
        *(x[:, 50:] for x in (q, k, v, g, beta)), initial_state=state, output_final_state=True
    )
    torch.testing.assert_close(torch.cat([prefix, suffix], dim=1), whole, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(final_state, whole_state, rtol=1e-4, atol=1e-5)


def test_chunk_and_recurrent_gated_delta_rule_triton_match_naive_interpreted(interpreted_triton) -> None:
    # Cases in conftest.INTERPRETED_TRITON_CASES: lengths 63 and 100, with and without an initial state.
    for errors in interpreted_triton["gated_delta_rule"]:
        assert_all_close(errors)


def test_chunk_gated_delta_rule_keeps_bfloat16_inputs_in_bfloat16() -> None:
    inputs = make_inputs("gated_delta_rule", B=1, T=40, H=2, K=16, V=16, dtype=torch.bfloat16)
    o, final_state = chunk_gated_delta_rule(**inputs, output_final_state=True, backend="torch")
    assert o.dtype == torch.bfloat16 and final_state.dtype == torch.float32
    leaves = [inputs[name] for name in ("q", "k", "v", "g", "beta")]
    grads = torch.autograd.grad(o.float().sum(), leaves)
    assert all(grad.dtype == torch.bfloat16 and torch.isfinite(grad).all() for grad in grads)
    reference, _ = naive_recurrent_gated_delta_rule(**{n: x.float() for n, x in inputs.items() if x is not None})
    torch.testing.assert_close(o.float(), reference, rtol=0.05, atol=0.05)


def test_chunk_gated_delta_rule_refuses_triton_on_cpu_without_the_interpreter(monkeypatch) -> None:
    inputs = make_inputs("gated_delta_rule", B=1, T=8, H=1, K=8, V=8)
    arguments = [inputs[name] for name in ("q", "k", "v", "g", "beta")]
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="CUDA"):
        chunk_gated_delta_rule(*arguments, backend="triton")
    with pytest.raises(ValueError, match="unknown kernel backend"):
        chunk_gated_delta_rule(*arguments, backend="cuda")


def test_importing_kernels_does_not_import_triton() -> None:
    # CPU-only installs have no Triton (it is an optional dependency).
    script = "import sys, kernels; kernels.chunk_gated_delta_rule; sys.exit('triton' in sys.modules)"
    repo_root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", script], cwd=repo_root, check=False).returncode == 0


@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION")
def test_gated_delta_rule_triton_kernels_compile_for_hopper_at_the_gpu_target_head_size() -> None:
    # The interpreter runs the kernels' logic; only the real compiler checks that they build for a
    # GPU (here sm_90, as on H100/H200) and fit its 227 KiB of shared memory per block.
    pytest.importorskip("triton")
    from kernels.common import triton_chunk_states, triton_recurrent

    sizes = {"K": 128, "V": 128, "BK": 128}
    recurrent_scalars = {"scale": "fp32", "T": "i32", "NUM_SEGMENTS": "i32"}
    bf16 = ("q", "k", "v", "g", "beta", "o", "initial_state", "grad_o", "dv")
    recurrent = {**sizes, "H": 16, "BV": triton_recurrent.MAX_VALUE_BLOCK, "SEGMENT": triton_recurrent.SEGMENT}
    recurrent |= {"GATE": triton_recurrent.GATE_SCALAR, "DELTA": True}
    states = {**sizes, "C": 64, "BV": triton_chunk_states.MAX_VALUE_BLOCK, "GATED": True, "DELTA": True}
    shared = [
        compile_for_cuda(
            triton_recurrent.recurrent_forward_kernel,
            {**recurrent, "HAS_INITIAL_STATE": True, "STORE_FINAL_STATE": True},
            recurrent_scalars,
            bf16,
            num_warps=triton_recurrent.NUM_WARPS,
        ),
        compile_for_cuda(
            triton_recurrent.recurrent_backward_kernel,
            {**recurrent, "B": 4, "HAS_GRAD_FINAL_STATE": True, "STORE_GRAD_INITIAL_STATE": True},
            recurrent_scalars,
            bf16,
            num_warps=triton_recurrent.NUM_WARPS,
        ),
        compile_for_cuda(
            triton_chunk_states.states_forward_kernel,
            {**states, "HAS_INITIAL_STATE": True},
            {"NUM_CHUNKS": "i32", "BH": "i32"},
            num_warps=triton_chunk_states.NUM_WARPS,
            num_stages=triton_chunk_states.NUM_STAGES,
        ),
        compile_for_cuda(
            triton_chunk_states.states_backward_kernel,
            {**states, "HAS_GRAD_FINAL_STATE": True},
            {"NUM_CHUNKS": "i32", "BH": "i32"},
            num_warps=triton_chunk_states.NUM_WARPS,
            num_stages=triton_chunk_states.NUM_STAGES,
        ),
    ]
    assert max(shared) <= 227 * 1024, shared
