"""`asi-arch run` with an LLM mind, end to end: real nats-server, services, sandbox and training;
the LLM is tests/recorded_llm.py's local OpenAI-compatible server replaying scripted answers.

The answers here are written by hand, in the exact shape the real model's answers take
(tests/recorded/llm-mind/ holds those), because each story needs a known failure and a known
fix: a proposal whose code sees the future, then the repair that removes the leak."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.researcher.mind import EvolveMind
from services.runtime import envelope
from services.runtime.logfile import fold, read_file
from tests.recorded_llm import RecordedAnswerServer, completion, dies, load

pytestmark = pytest.mark.slow
SEED = EvolveMind(0).seed_proposal()
LINE = "        o = self.o_norm(o)\n"
assert LINE in SEED.code
LEAKY = "        o = self.o_norm(o) * torch.sigmoid(o.flip(1))  # a gate from the sequence's summary\n"
GATED = "        o = self.o_norm(o) * torch.sigmoid(o)  # a gate from each head's own output\n"


def answer(payload: dict, tokens: int = 120) -> dict:
    return completion(json.dumps(payload), prompt_tokens=1500, completion_tokens=tokens)


PROPOSE_LEAKY = answer({
    "name": "delta-self-gate", "origin": "cognition", "cites": [],
    "motivation": "Gate each head's normalised output with a sigmoid of a summary of the sequence, so "
                  "heads that recall nothing useful are damped.",
    "edits": [{"search": LINE, "replace": LEAKY}]})
REPAIR = answer({"cause": "o.flip(1) reads later positions, which breaks causality.",
                 "edits": [{"search": LEAKY, "replace": GATED}]}, tokens=60)
PROPOSE_GATED = answer({
    "name": "delta-output-sigmoid", "origin": "original", "cites": [],
    "motivation": "Multiply each head's normalised output by its own sigmoid, a cheap self-gate.",
    "edits": [{"search": LINE, "replace": GATED}]})
JUDGE = {"rubric": load("rubric.chat-completion.json"), "analysis": load("analysis.chat-completion.json")}


def run(data: Path, *args: str, timeout: float = 900) -> tuple[int, dict, str]:
    result = subprocess.run([sys.executable, "-m", "services.cli", "run", "--profile", "tiny", "--data-dir",
                             str(data), "--json", *args], capture_output=True, text=True, timeout=timeout)
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "{}"
    return result.returncode, json.loads(last), result.stderr


def events(data: Path, tmp: Path) -> list:
    out = tmp / "run.jsonl"
    subprocess.run([sys.executable, "-m", "services.cli", "events", "export", "--data-dir", str(data), "-o",
                    str(out)], check=True, capture_output=True, timeout=120)
    return read_file(out)


def payloads(log: list, name: str) -> list:
    return [envelope.unpack(e) for e in log if e.type == name]


def test_propose_reject_repair_train_and_replay_without_the_llm(tmp_path: Path) -> None:
    data = tmp_path / "asi"
    with RecordedAnswerServer({"mixer_edits": PROPOSE_LEAKY, "mixer_repair": REPAIR, **JUDGE}) as llm:
        code, result, stderr = run(data, "--experiments", "1", "--mind", "llm", "--llm-url", llm.base_url,
                                   "--llm-model", "recorded-model")
        assert code == 0, stderr[-3000:]
        schemas = [r["response_format"]["json_schema"]["name"] for r in llm.requests]
    assert schemas.count("mixer_edits") == 1 and schemas.count("mixer_repair") == 1
    log = events(data, tmp_path)
    proposed = {p.arch_id: p for p in payloads(log, "ArchitectureProposed")}
    [rejected] = payloads(log, "ProposalRejected")
    first = proposed[rejected.arch_id]
    assert rejected.gate == "validity" and rejected.failure_kind == "non_causal" and '"causal"' in rejected.checks_json
    assert first.mind == "llm:recorded-model" and first.prompt and '"delta-self-gate"' in first.response
    assert first.llm_prompt_tokens == 1500 and first.llm_completion_tokens == 120
    [repair] = [p for p in proposed.values() if p.repair_of_attempt == 1]
    assert repair.parent_ids == [first.arch_id] and repair.repair_of_failure == "non_causal"
    assert "torch.sigmoid(o)  #" in repair.code and "flip" not in repair.code and repair.mind == "llm:recorded-model"
    assert "o.flip(1) reads later positions" in repair.response
    # The invalid proposal never reached the queue; the repair did, and was trained and judged.
    requested = {p.arch_id for p in payloads(log, "TrainingRequested")}
    assert first.arch_id not in requested and repair.arch_id in requested
    assert repair.arch_id in {p.arch_id for p in payloads(log, "TrainingFinished")}
    assert first.origin_check.startswith("claimed origin cognition but cites no cognition entry")
    assert first.origin == "original"
    assert result["reason"] == "experiment budget spent"
    # The server is stopped: the exported log alone replays to the run's own digest.
    replayed = subprocess.run([sys.executable, "-m", "services.cli", "replay", str(tmp_path / "run.jsonl"),
                               "--json"], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(replayed.stdout)["digest"] == result["digest"] == fold(log).summary()["digest"]


def test_mixed_falls_back_to_the_evolve_mind_when_the_server_dies(tmp_path: Path) -> None:
    data = tmp_path / "asi"
    with RecordedAnswerServer({"mixer_edits": [PROPOSE_GATED, dies()], **JUDGE}) as llm:
        code, result, stderr = run(data, "--experiments", "2", "--mind", "mixed", "--llm-url", llm.base_url,
                                   "--llm-model", "recorded-model")
        assert code == 0, stderr[-3000:]
    log = events(data, tmp_path)
    minds = [p.mind for p in payloads(log, "ArchitectureProposed") if not p.is_baseline]
    assert minds[0] == "llm:recorded-model" and minds[-1] == "evolve"
    failed = payloads(log, "LLMExchangeFailed")
    assert failed and {f.kind for f in failed} == {"unreachable"} and failed[-1].fallback == "evolve"
    assert len(failed) <= 3  # bounded retries, then the evolve mind stood in
    assert "gave no code (unreachable" in stderr and "next: evolve" in stderr  # and the person watching saw it
    assert "by llm:recorded-model: 1,620 tokens" in stderr
    assert result["experiments"] == 2


def test_the_token_budget_is_counted_from_usage_and_the_repair_budget_bounds_repairs(tmp_path: Path) -> None:
    data = tmp_path / "asi"
    always_leaky = answer({"cause": "unsure", "edits": [{"search": LEAKY, "replace": LEAKY.replace("1)", "1) + 0")}]})
    # 1500 + 120 tokens for the proposal, 1500 + 120 for the one repair: a budget of 3000 is spent after both.
    with RecordedAnswerServer({"mixer_edits": PROPOSE_LEAKY, "mixer_repair": always_leaky, **JUDGE}) as llm:
        code, result, stderr = run(data, "--experiments", "1", "--mind", "mixed", "--llm-url", llm.base_url,
                                   "--llm-model", "recorded-model", "--repairs", "1", "--llm-token-budget", "3000")
        assert code == 0, stderr[-3000:]
        schemas = [r["response_format"]["json_schema"]["name"] for r in llm.requests]
    assert schemas.count("mixer_edits") == 1 and schemas.count("mixer_repair") == 1  # --repairs 1
    log = events(data, tmp_path)
    proposed = [p for p in payloads(log, "ArchitectureProposed") if not p.is_baseline]
    assert [p.mind for p in proposed][:2] == ["llm:recorded-model"] * 2
    assert max(p.repair_of_attempt for p in proposed if p.mind != "evolve") == 1
    assert sum(p.llm_prompt_tokens + p.llm_completion_tokens for p in proposed) == 3240
    assert proposed[-1].mind == "evolve"  # the budget is spent: the evolve mind made the experiment


def test_an_llm_run_with_no_server_ends_with_a_reason_after_bounded_retries(tmp_path: Path) -> None:
    data = tmp_path / "asi"
    code, result, stderr = run(data, "--experiments", "2", "--mind", "llm", "--llm-url", "http://127.0.0.1:9/v1")
    assert code == 1 and "the LLM mind stopped" in result["reason"]
    log = events(data, tmp_path)
    failed = payloads(log, "LLMExchangeFailed")
    assert 3 <= len(failed) <= 12 and {f.kind for f in failed} == {"unreachable"}
    assert all(f.prompt for f in failed)  # what would have been asked is in the log
    assert not [p for p in payloads(log, "ArchitectureProposed") if not p.is_baseline]
