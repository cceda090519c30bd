"""Kernel tests run single-threaded (the CI box has two cores shared with other work), and the
interpreted Triton checks of all ops share one subprocess, since each start imports torch afresh."""

from collections.abc import Iterator

import pytest
import torch

from kernels.common.testing import interpreted_triton_errors

# op -> (form, T, with_initial_state, gate, V). "chunk" is the chunked op with Triton state passes
# (linear attention with a per-channel decay: the recurrence); "recurrent" the Triton recurrence.
# V=48 spans two value blocks of the recurrence, the last one partly masked.
INTERPRETED_TRITON_CASES: dict[str, list[tuple[str, int, bool, str | None, int]]] = {
    "gated_delta_rule": [
        ("chunk", 63, False, None, 16),
        ("chunk", 100, True, None, 48),
        ("recurrent", 63, False, None, 16),
        ("recurrent", 100, True, None, 48),
    ],
    "delta_rule": [("chunk", 63, True, None, 16), ("recurrent", 100, False, None, 16)],
    "linear_attn": [
        ("chunk", 100, True, None, 16),
        ("chunk", 63, False, "scalar", 16),
        ("chunk", 100, True, "vector", 16),
        ("recurrent", 63, True, "scalar", 16),
    ],
}


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def interpreted_triton() -> dict[str, list[dict[str, float]]]:
    """Relative errors of every op's Triton kernels against naive, run under TRITON_INTERPRET=1."""
    return interpreted_triton_errors(INTERPRETED_TRITON_CASES)
