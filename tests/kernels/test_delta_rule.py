"""chunk_delta_rule and recurrent_delta_rule: every implementation against naive."""

from functools import partial

import pytest
import torch

from kernels import chunk_delta_rule, recurrent_delta_rule
from kernels.common.testing import assert_all_close, compare, make_inputs
from kernels.delta_rule import naive_recurrent_delta_rule, torch_chunk_delta_rule


@pytest.mark.parametrize("T", [63, 100])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_chunk_delta_rule_torch_matches_naive(T: int, with_initial_state: bool) -> None:
    inputs = make_inputs("delta_rule", B=2, T=T, H=2, K=32, V=16, with_initial_state=with_initial_state)
    chunked = partial(chunk_delta_rule, backend="torch")
    assert_all_close(compare(chunked, naive_recurrent_delta_rule, inputs))


@pytest.mark.parametrize("chunk_size", [16, 64])
def test_chunk_delta_rule_torch_any_chunk_size(chunk_size: int) -> None:
    inputs = make_inputs("delta_rule", B=1, T=100, H=2, K=16, V=32, with_initial_state=True)
    chunked = partial(torch_chunk_delta_rule, chunk_size=chunk_size)
    assert_all_close(compare(chunked, naive_recurrent_delta_rule, inputs))


def test_chunk_delta_rule_with_beta_two_reflects_the_key_direction() -> None:
    # beta = 2 makes I - 2 k k^T a reflection: reading the key right after writing it returns
    # the negated old value plus twice the new one, the negative-eigenvalue regime.
    k = torch.nn.functional.normalize(torch.randn(1, 1, 1, 8), dim=-1)
    v = torch.randn(1, 1, 1, 4)
    state = torch.randn(1, 1, 8, 4)
    o, new_state = chunk_delta_rule(k, k, v, torch.full((1, 1, 1), 2.0), 1.0, state, True)
    old_value = torch.einsum("k,kv->v", k[0, 0, 0], state[0, 0])
    torch.testing.assert_close(o[0, 0, 0], 2 * v[0, 0, 0] - old_value, rtol=1e-5, atol=1e-5)
    assert new_state is not None


def test_recurrent_delta_rule_continues_from_a_chunked_prefix() -> None:
    inputs = make_inputs("delta_rule", B=2, T=70, H=2, K=16, V=16)
    q, k, v, beta = (inputs[name].detach() for name in ("q", "k", "v", "beta"))
    whole, whole_state = chunk_delta_rule(q, k, v, beta, output_final_state=True)
    prefix, state = chunk_delta_rule(*(x[:, :50] for x in (q, k, v, beta)), output_final_state=True)
    suffix, final_state = recurrent_delta_rule(
        *(x[:, 50:] for x in (q, k, v, beta)), initial_state=state, output_final_state=True
    )
    torch.testing.assert_close(torch.cat([prefix, suffix], dim=1), whole, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(final_state, whole_state, rtol=1e-4, atol=1e-5)


def test_chunk_and_recurrent_delta_rule_triton_match_naive_interpreted(interpreted_triton) -> None:
    # Cases in conftest.INTERPRETED_TRITON_CASES: lengths 63 and 100, with and without an initial state.
    for errors in interpreted_triton["delta_rule"]:
        assert_all_close(errors)
