"""The LLM mind against the REAL embedded model: llama-server built from source, serving
Qwen2.5-Coder-0.5B-Instruct from the sha256-verified GGUF (``make llm``, which ``make test``
runs first). What the model writes varies; what is checked is the path: the server starts and
stops, the schema form is accepted, the answer is parsed into edits or fails with a named kind,
its usage is counted, and the code it yields goes through the gates."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.researcher import gates
from services.researcher.llm_mind import Context, LLMMind, MindFailure
from services.runtime.llm import LLMClient
from services.runtime.llmserver import LlamaServer, installed
from tests.record_llm_answers import REFERENCES, seed_parent

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not installed("0.5b"), reason="the embedded LLM is not installed: run `make llm`")]
KINDS = {"truncated", "malformed", "refusal", "empty_code", "edits_not_applied"}


def test_the_real_model_proposes_through_the_llm_mind_and_the_gates(tmp_path: Path) -> None:
    parent = seed_parent()
    with LlamaServer("0.5b", log_path=tmp_path / "llama-server.log") as server:
        mind = LLMMind(LLMClient(server.url, server.model_name, timeout_s=600))
        try:
            draft = asyncio.run(mind.propose(Context(parent, parent, REFERENCES)))
        except MindFailure as failure:  # a small model's answer may be unusable: then it is named
            assert failure.kind in KINDS, failure
            assert failure.exchange.prompt and failure.exchange.completion_tokens > 0
            return
    assert server.process is None  # stopped with the block
    exchange = draft.exchange
    assert exchange.prompt_tokens > 500 and exchange.completion_tokens > 0 and exchange.response
    assert "class Mixer" in draft.proposal.code or "Mixer = " in draft.proposal.code
    verdict, fingerprint = asyncio.run(gates.validity(draft.proposal.code, "tiny"))
    assert (verdict is None) == bool(fingerprint)  # valid code gets a fingerprint, invalid a named failure
    if verdict is not None:
        assert verdict.gate == "validity" and verdict.failure_kind and verdict.reason
