"""Record the LLM mind's answers from the real embedded model, and measure it.

    PYTHONPATH=$PWD .venv/bin/python -m tests.record_llm_answers [--proposals 4] [--size 0.5b] [--save]
    PYTHONPATH=$PWD .venv/bin/python -m tests.record_llm_answers --from-log run.jsonl

Starts llama-server with the installed Qwen2.5-Coder model (``make llm``), asks the LLM mind for
children of the seed (DeltaNet, as the evolve mind renders it) exactly as the researcher does,
runs every answer through the deterministic fixes, the contract and the engineer's sandboxed
probes, and sends each failure back for up to ``--repairs`` repair rounds. Prints one JSON
object: per proposal the tokens, seconds, fixes, and whether the probes passed first time and
after repair. ``--save`` writes the raw chat completions to tests/recorded/llm-mind/, where the
tests replay them (the answers' content and usage as the server sent them, nothing edited),
beside ``parent.py.txt``, the code their edits were written against.
``--from-log`` instead takes the answers out of an exported log of a real LLM run (every
prompt and raw answer is in the event it decided) and asks the model once more for an answer
cut off at 40 tokens (``truncated.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from services.researcher import gates, genome
from services.researcher.llm_mind import SCHEMA, SYSTEM, Context, LLMMind, MindFailure, build_prompt
from services.researcher.mind import EvolveMind, Reference
from services.runtime.llm import Exchange, LLMClient, LLMError
from services.runtime.llmserver import LlamaServer
from services.runtime.projection import ArchitectureView
from tests.recorded_llm import completion

OUT = Path(__file__).parent / "recorded" / "llm-mind"
RECORDED_PARENT = OUT / "parent.py.txt"  # the parent the recorded answers edit: replays must show them this code
REFERENCES = [
    Reference("lit-gated-deltanet", "cognition", ("decay=scalar",),
              "Gated DeltaNet: a per-head scalar decay alpha_t = exp(g_t) before the delta update lets the "
              "state forget stale associations; use chunk_gated_delta_rule(q, k, v, g, beta) with g <= 0.", 0.81),
    Reference("exp-output-gate", "experience", ("gate=output",),
              "Adding a SiLU output gate from the layer input improved MQAR accuracy by 4 points.", 0.66,
              outcome="improved"),
]


def seed_parent(code: str | None = None) -> ArchitectureView:
    """The seed as the researcher shows it to the LLM mind; ``code`` replaces the seed's own rendering."""
    seed = EvolveMind(0).seed_proposal()
    return ArchitectureView(
        arch_id="arch-seed", run_id="run-record", name=seed.name, parents=[], motivation=seed.motivation,
        code=code if code is not None else seed.code, code_hash="", components=seed.components, origin="seed",
        citations=[], mutation="",
        parent_selection="", mind="evolve", is_baseline=True, fingerprint="", repair_of_attempt=0,
        status="analyzed", fitness=0.5,
        result={"val_loss": 5.91, "benchmarks": {"mqar": 0.31, "noisy_recall": 0.22, "selective_copying": 0.18},
                "benchmark_mean": 0.24, "params": 0, "tokens_per_s": 0.0, "train_seconds": 0.0, "checkpoint": ""},
        analysis="The seed: selective copying and noisy recall are its weakest tasks.")


def reference_gated_deltanet() -> ArchitectureView:
    """Gated DeltaNet as the researcher shows a reference of the pool: rendered in the parent's idiom."""
    components = genome.canonical(genome.BASELINES["gated_deltanet"])
    return replace(seed_parent(genome.render(components, "gated-deltanet", "")), arch_id="arch-gdn",
                   name="gated-deltanet", components=components, fitness=0.5,
                   result={**seed_parent().result, "val_loss": 5.62, "benchmark_mean": 0.27})


def recorded_parent() -> ArchitectureView:
    """The seed with the code the recorded answers were written against (the genome renders it differently
    as it grows; an edit is only meaningful against the text it was asked about)."""
    return seed_parent(RECORDED_PARENT.read_text())


async def from_log(path: Path, size: str) -> int:
    from services.runtime import envelope
    from services.runtime.logfile import read_file

    OUT.mkdir(parents=True, exist_ok=True)
    written = []
    for env in read_file(path):
        if env.type != "ArchitectureProposed":
            continue
        event = envelope.unpack(env)
        if event.is_baseline and event.operator == "seed" and "parent" not in written:
            RECORDED_PARENT.write_text(event.code)  # the seed the run's answers edit
            written.append("parent")
        if not event.mind.startswith("llm:") or not event.response:
            continue
        key = f"{'repair' if event.repair_of_attempt else 'propose'}-{event.arch_id}"
        answer = completion(event.response, model=event.mind.removeprefix("llm:"),
                            prompt_tokens=event.llm_prompt_tokens, completion_tokens=event.llm_completion_tokens)
        (OUT / f"{key}.json").write_text(json.dumps(answer, indent=1, sort_keys=True) + "\n")
        written.append(key)
    parent = recorded_parent()
    with LlamaServer(size, log_path=Path(tempfile.mkdtemp()) / "llama-server.log") as server:
        client = LLMClient(server.url, server.model_name, timeout_s=600)
        try:  # a real answer cut off at the token limit
            await client.ask_json(SYSTEM, build_prompt(Context(parent, parent, REFERENCES)),
                                  schema_name="mixer_edits", schema=SCHEMA, max_tokens=40)
        except LLMError as exc:
            if exc.kind == "truncated" and exc.exchange is not None:
                truncated = completion(exc.exchange.response, finish_reason="length", model=server.model_name,
                                       prompt_tokens=exc.exchange.prompt_tokens,
                                       completion_tokens=exc.exchange.completion_tokens)
                (OUT / "truncated.json").write_text(json.dumps(truncated, indent=1, sort_keys=True) + "\n")
                written.append("truncated")
    print(json.dumps({"written": written}))
    return 0


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--proposals", type=int, default=4)
    parser.add_argument("--repairs", type=int, default=2)
    parser.add_argument("--size", default="0.5b")
    parser.add_argument("--save", action="store_true")
    parser.add_argument("--from-log", type=Path, help="an exported log of a real LLM run to take the answers from")
    args = parser.parse_args()
    if args.from_log:
        return await from_log(args.from_log, args.size)
    parent = seed_parent()
    context = Context(parent, parent, REFERENCES, others=[reference_gated_deltanet()])
    log = Path(tempfile.mkdtemp()) / "llama-server.log"
    started = time.monotonic()
    server = LlamaServer(args.size, log_path=log)
    url = server.start()
    ready_s = time.monotonic() - started
    mind = LLMMind(LLMClient(url, server.model_name, timeout_s=600))
    rows: list[dict[str, Any]] = []
    saved: dict[str, Any] = {}

    def record(key: str, exchange: Exchange, finish_reason: str = "stop") -> None:
        # The answer's content and usage as the server sent them, in a chat completion's envelope.
        saved[key] = completion(exchange.response, finish_reason=finish_reason, model=server.model_name,
                                prompt_tokens=exchange.prompt_tokens, completion_tokens=exchange.completion_tokens)

    try:
        for n in range(args.proposals):
            mind.seed = n
            row: dict[str, Any] = {"proposal": n}
            try:
                draft = await mind.propose(context)
            except MindFailure as failure:
                record(f"failed-{n}", failure.exchange)
                row.update(kind=failure.kind, message=str(failure)[:200], tokens=failure.exchange.tokens,
                           seconds=round(failure.exchange.seconds, 1), first_pass=False, passed=False)
                rows.append(row)
                continue
            record(f"propose-{n}", draft.exchange)
            row.update(tokens=draft.exchange.tokens, completion_tokens=draft.exchange.completion_tokens,
                       seconds=round(draft.exchange.seconds, 1), fixes=list(draft.fixes),
                       origin=draft.proposal.origin, origin_check=draft.origin_check)
            verdict, _ = await gates.validity(draft.proposal.code, "tiny")
            row["first_pass"] = verdict is None
            proposal, repairs = draft.proposal, []
            for r in range(args.repairs):
                if verdict is None:
                    break
                failure = {"kind": verdict.failure_kind, "message": verdict.message,
                           "traceback": verdict.traceback}
                entry: dict[str, Any] = {"failure": f"{verdict.failure_kind}: {verdict.message[:160]}"}
                try:
                    repaired = await mind.repair(f"arch-{n}", proposal, failure, context=context)
                except MindFailure as exc:
                    entry.update(kind=exc.kind, message=str(exc)[:160], tokens=exc.exchange.tokens)
                    repairs.append(entry)
                    continue
                record(f"repair-{n}-{r}", repaired.exchange)
                entry.update(tokens=repaired.exchange.tokens, seconds=round(repaired.exchange.seconds, 1),
                             fixes=list(repaired.fixes))
                proposal = repaired.proposal
                verdict, _ = await gates.validity(proposal.code, "tiny")
                entry["passed"] = verdict is None
                repairs.append(entry)
            row.update(repairs=repairs, passed=verdict is None,
                       final_failure="" if verdict is None else f"{verdict.failure_kind}: {verdict.message[:160]}")
            rows.append(row)
        try:  # a real answer cut off at the token limit
            await mind.client.ask_json(SYSTEM, build_prompt(context), schema_name="mixer_edits", schema=SCHEMA,
                                       max_tokens=40)
        except LLMError as exc:
            if exc.kind == "truncated" and exc.exchange is not None:
                record("truncated", exc.exchange, finish_reason="length")
    finally:
        server.stop()
    if args.save:
        OUT.mkdir(parents=True, exist_ok=True)
        for key, answer in saved.items():
            (OUT / f"{key}.json").write_text(json.dumps(answer, indent=1, sort_keys=True) + "\n")
        RECORDED_PARENT.write_text(parent.code)
    answered = [r for r in rows if "kind" not in r]
    summary = {
        "model": server.model_name, "threads": server.threads, "server_ready_s": round(ready_s, 1),
        "proposals": len(rows), "answers_with_code": len(answered),
        "passed_first_time": sum(r["first_pass"] for r in rows),
        "passed_after_repair": sum(r["passed"] for r in rows),
        "mean_tokens": round(sum(r["tokens"] for r in answered) / max(1, len(answered))),
        "mean_seconds": round(sum(r["seconds"] for r in answered) / max(1, len(answered)), 1),
        "rows": rows,
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
