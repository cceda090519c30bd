"""chunk_linear_attn and recurrent_linear_attn: every implementation against naive, for each decay."""

from functools import partial

import pytest
import torch

from kernels import chunk_linear_attn, recurrent_linear_attn
from kernels.common.testing import assert_all_close, compare, make_inputs
from kernels.linear_attn import naive_recurrent_linear_attn, torch_chunk_linear_attn


@pytest.mark.parametrize("T", [63, 100])
@pytest.mark.parametrize("with_initial_state", [False, True])
@pytest.mark.parametrize("gate", [None, "scalar", "vector"])
def test_chunk_linear_attn_torch_matches_naive(T: int, with_initial_state: bool, gate: str | None) -> None:
    inputs = make_inputs("linear_attn", B=2, T=T, H=2, K=32, V=16, gate=gate, with_initial_state=with_initial_state)
    chunked = partial(chunk_linear_attn, backend="torch")
    assert_all_close(compare(chunked, naive_recurrent_linear_attn, inputs))


def test_chunk_linear_attn_torch_survives_strong_per_channel_decay() -> None:
    # exp(-G) over a chunk of such decays overflows float32; the chunked form must never form it.
    inputs = make_inputs("linear_attn", B=1, T=100, H=1, K=16, V=16, gate="vector")
    with torch.no_grad():
        inputs["g"].fill_(-20.0)
    errors = compare(partial(torch_chunk_linear_attn, chunk_size=64), naive_recurrent_linear_attn, inputs)
    # The true dg is about exp(-20), under the float32 cancellation error of d/dG (G_i - G_j) summed
    # over a chunk, so it is checked for finiteness only.
    assert errors.pop("dg") < float("inf")
    assert_all_close(errors)


def test_chunk_linear_attn_fixed_decay_is_retnet() -> None:
    # RetNet's fixed decay is a constant g; with no initial state o_t = sum_{s<=t} gamma^(t-s) (q_t.k_s) v_s.
    B, T, H, K = 1, 12, 1, 4
    q, k, v = torch.randn(B, T, H, K), torch.randn(B, T, H, K), torch.randn(B, T, H, K)
    gamma = 0.9
    o, _ = chunk_linear_attn(q, k, v, torch.full((B, T, H), torch.log(torch.tensor(gamma)).item()), scale=1.0)
    steps = torch.arange(T)
    weights = torch.where(steps[:, None] >= steps, gamma ** (steps[:, None] - steps).float(), 0.0)
    expected = (torch.einsum("tk,sk->ts", q[0, :, 0], k[0, :, 0]) * weights) @ v[0, :, 0]
    torch.testing.assert_close(o[0, :, 0], expected, rtol=1e-4, atol=1e-5)


def test_recurrent_linear_attn_continues_from_a_chunked_prefix() -> None:
    inputs = make_inputs("linear_attn", B=2, T=70, H=2, K=16, V=16, gate="vector")
    q, k, v, g = (inputs[name].detach() for name in ("q", "k", "v", "g"))
    whole, whole_state = chunk_linear_attn(q, k, v, g, output_final_state=True)
    prefix, state = chunk_linear_attn(*(x[:, :50] for x in (q, k, v, g)), output_final_state=True)
    suffix, final_state = recurrent_linear_attn(
        *(x[:, 50:] for x in (q, k, v, g)), initial_state=state, output_final_state=True
    )
    torch.testing.assert_close(torch.cat([prefix, suffix], dim=1), whole, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(final_state, whole_state, rtol=1e-4, atol=1e-5)


def test_chunk_and_recurrent_linear_attn_triton_match_naive_interpreted(interpreted_triton) -> None:
    # Cases in conftest.INTERPRETED_TRITON_CASES: lengths 63 and 100, with and without an initial state.
    for errors in interpreted_triton["linear_attn"]:
        assert_all_close(errors)
