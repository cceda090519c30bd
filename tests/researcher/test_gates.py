"""The gates before training, each on real parts: MiniLM embeddings, the engineer's sandboxed
probes, and the functional fingerprint computed inside that sandbox."""

from __future__ import annotations

import asyncio

import pytest

from services.researcher import gates
from services.researcher.mind import EvolveMind
from services.researcher.novelty import functional_fingerprint
from services.runtime.projection import ArchitectureView

SEED = EvolveMind(0).seed_proposal()


def view(arch_id: str, motivation: str, code: str, *, fingerprint: str = "", failure: dict | None = None,
         status: str = "analyzed") -> ArchitectureView:
    return ArchitectureView(arch_id=arch_id, run_id="run-t", name=arch_id, parents=[], motivation=motivation,
                            code=code, code_hash="", components={}, origin="original", citations=[], mutation="",
                            parent_selection="", mind="evolve", is_baseline=False, fingerprint=fingerprint,
                            repair_of_attempt=0, status=status, failure=failure or {})


@pytest.fixture(scope="module")
def embeddings() -> gates.Embeddings:
    return gates.Embeddings()


def renamed_duplicate(code: str) -> str:
    """The seed's file with every name of its own changed and comments added: reads differently,
    computes the same function."""
    for old, new in (("ShortConv", "CausalDepthwise"), ("q_proj", "to_query"), ("k_proj", "to_key"),
                     ("v_proj", "to_value"), ("b_proj", "to_beta"), ("o_norm", "head_norm"),
                     ("o_proj", "to_out"), ("q_conv", "query_mixer"), ("k_conv", "key_mixer"),
                     ("v_conv", "value_mixer")):
        code = code.replace(old, new)
    return code.replace("class Mixer(nn.Module):", "# A fresh take on recall.\nclass Mixer(nn.Module):")


def test_a_paraphrased_motivation_is_rejected_and_a_different_idea_passes(embeddings: gates.Embeddings) -> None:
    earlier = [view("arch-a", "Add a per-head scalar forget gate to the delta rule so old associations decay.",
                    SEED.code)]
    settings = gates.GateSettings(motivation_threshold=0.9, code_threshold=1.01)
    same, nearest = gates.embedding_novelty("Give the delta rule a per-head scalar forget gate so that old "
                                            "associations decay away.", SEED.code, earlier, settings, embeddings)
    assert same is not None and same.gate == "novelty" and same.similar_to == "arch-a"
    assert "motivation" in same.reason and same.similarity >= 0.9
    assert nearest.motivation_id == "arch-a" and nearest.motivation_similarity == same.similarity
    assert nearest.code_id == "arch-a" and nearest.code_similarity > 0.999  # the same file, reported as well
    other, _ = gates.embedding_novelty("Replace the short convolution with a sliding-window softmax branch mixed per "
                                    "head with the recurrence.", SEED.code, earlier, settings, embeddings)
    assert other is None


def test_code_that_differs_only_in_comments_and_docstrings_is_a_duplicate(embeddings: gates.Embeddings) -> None:
    earlier = [view("arch-a", "one idea", SEED.code)]
    restyled = '"""Another docstring entirely."""\n# a comment\n' + gates.normalise_code(SEED.code)
    verdict, _ = gates.embedding_novelty("a wholly different text about something else", restyled, earlier,
                                      gates.GateSettings(), embeddings)
    assert verdict is not None and "code" in verdict.reason and verdict.similarity > 0.999


def test_a_change_past_minilms_window_still_makes_the_code_different(embeddings: gates.Embeddings) -> None:
    # The last lines of the file lie far beyond MiniLM's 256 word pieces: embedded whole, the two
    # files would score 1.0. Chunked, the changed chunk tells them apart.
    gated = SEED.code.replace("        o = self.o_norm(o)\n", "        o = self.o_norm(o) * torch.sigmoid(o)\n")
    assert gated != SEED.code
    whole = embeddings.nearest(gates.normalise_code(gated), [("arch-a", gates.normalise_code(SEED.code))])[1]
    _, chunked = embeddings.nearest_code(gated, [("arch-a", SEED.code)])
    assert whole > 0.999 and chunked < gates.CODE_THRESHOLD
    earlier = [view("arch-a", "one idea", SEED.code)]
    assert gates.embedding_novelty("another idea altogether, about gating", gated, earlier, gates.GateSettings(),
                                   embeddings)[0] is None
    # One token (beta in (0, 2) instead of (0, 1)) is a different design, and passes at the default.
    wider = SEED.code.replace("beta = self.b_proj(x).sigmoid()", "beta = self.b_proj(x).sigmoid() * 2")
    assert wider != SEED.code
    assert gates.embedding_novelty("a third idea, on the write strength", wider, earlier, gates.GateSettings(),
                                   embeddings)[0] is None
    # The smallest real change the 1.5B model proposed: a bias on the write strength's projection.
    biased = SEED.code.replace("nn.Linear(d_model, self.n_heads, bias=False)", "nn.Linear(d_model, self.n_heads)")
    assert biased != SEED.code
    verdict, _ = gates.embedding_novelty("a fourth idea, a bias", biased, earlier, gates.GateSettings(), embeddings)
    assert verdict is None
    commented = SEED.code.replace("beta = self.b_proj(x).sigmoid()", "beta = self.b_proj(x).sigmoid()  # in (0, 1)")
    assert commented != SEED.code
    verdict, _ = gates.embedding_novelty("a fifth idea", commented, earlier, gates.GateSettings(), embeddings)
    assert verdict is not None


def test_failed_proposals_are_not_compared_but_duplicates_of_duplicates_are() -> None:
    archs = [view("arch-invalid", "m", "c", failure={"kind": "validity", "message": "x"}, status="rejected"),
             view("arch-crashed", "m", "c", failure={"kind": "timeout", "message": "x"}, status="discarded"),
             view("arch-dup", "m", "c", failure={"kind": "novelty", "message": "x"}, status="rejected"),
             view("arch-ok", "m", "c"), view("arch-self", "m", "c")]
    assert [a.arch_id for a in gates.comparable(archs, "arch-self")] == ["arch-dup", "arch-ok"]


@pytest.mark.parametrize(("code", "kind", "words"), [
    ("import torch\nclass Other(torch.nn.Module):\n    pass\n", "no_mixer", "defines no `class Mixer"),
    ("import os\nimport torch\nclass Mixer(torch.nn.Module):\n    pass\n", "forbidden_import",
     "line 1: import of 'os'"),
    ("import torch\nclass Mixer(torch.nn.Module):\n    def forward(self, x)\n        return x\n", "syntax_error",
     "line 3"),
    ("   \n", "empty_code", "empty"),
])
def test_the_contract_is_read_statically_with_a_precise_message(code: str, kind: str, words: str) -> None:
    verdict, fingerprint = asyncio.run(gates.validity(code, "tiny"))
    assert verdict is not None and verdict.gate == "validity" and verdict.failure_kind == kind
    assert words in verdict.reason and fingerprint == ""


def test_a_mixer_that_sees_the_future_fails_the_probes_before_any_training() -> None:
    leaky = SEED.code.replace("        return self.o_proj(o)", "        return self.o_proj(o).flip(1)")
    assert leaky != SEED.code
    verdict, fingerprint = asyncio.run(gates.validity(leaky, "tiny"))
    assert verdict is not None and verdict.failure_kind == "non_causal" and "causal" in verdict.reason
    assert '"causal"' in verdict.checks_json and fingerprint == ""


def test_the_fingerprint_from_the_sandbox_catches_a_renamed_duplicate() -> None:
    twin = renamed_duplicate(SEED.code)
    assert twin != SEED.code and "to_query" in twin
    verdict, fingerprint = asyncio.run(gates.validity(twin, "tiny"))
    assert verdict is None and fingerprint
    # The baseline's fingerprint was computed in-process (trusted, rendered code); the twin's in the
    # sandbox. They agree, and the gate names the original.
    earlier = [view("arch-seed", SEED.motivation, SEED.code, fingerprint=functional_fingerprint(SEED.code))]
    caught = gates.fingerprint_novelty(fingerprint, earlier)
    assert caught is not None and caught.similar_to == "arch-seed" and "same function" in caught.reason
    changed = SEED.code.replace("beta = self.b_proj(x).sigmoid()", "beta = self.b_proj(x).sigmoid() * 0.5")
    _, other = asyncio.run(gates.validity(changed, "tiny"))
    assert other and gates.fingerprint_novelty(other, earlier) is None
