"""The functional fingerprint sees through names and comments, and not through design changes."""

from __future__ import annotations

import pytest
import torch

from services.researcher.genome import SEED_COMPONENTS, render
from services.researcher.novelty import functional_fingerprint


def seed_code() -> str:
    return render(SEED_COMPONENTS, "delta", "The seed.")


def test_names_comments_and_motivation_do_not_change_the_fingerprint():
    original = seed_code()
    disguised = (
        render(SEED_COMPONENTS, "a-completely-new-idea", "Nothing like the seed, honestly.")
        .replace("self.q_proj", "self.query_projection")
        .replace("o_norm", "output_norm")
        .replace("# [B, T, H, V]", "# the recurrence's output")
    )
    assert disguised != original
    assert functional_fingerprint(disguised) == functional_fingerprint(original)


def test_a_design_change_changes_the_fingerprint():
    gated = render({**SEED_COMPONENTS, "decay": "scalar"}, "delta-scalar-decay", "Gated.")
    assert functional_fingerprint(gated) != functional_fingerprint(seed_code())


def test_a_changed_constant_changes_the_fingerprint():
    narrower_conv = "ShortConv(self.value_dim, 3)"
    wider_conv = seed_code().replace("ShortConv(self.value_dim, 4)", narrower_conv)
    assert narrower_conv in wider_conv
    assert functional_fingerprint(wider_conv) != functional_fingerprint(seed_code())


def test_the_fingerprint_is_stable_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = functional_fingerprint(seed_code())
    assert torch.rand(1) == expected_next
    assert functional_fingerprint(seed_code()) == first


def test_code_without_a_mixer_is_refused():
    with pytest.raises(ValueError, match="no `class Mixer"):
        functional_fingerprint("import torch\n")
