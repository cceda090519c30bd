"""The qualitative rubric asked of an LLM when one is configured: it replaces the measured
quality term. As in the paper, it weighs performance, innovation and complexity and is
anchored on two known designs, so scores are comparable across calls."""

from __future__ import annotations

from typing import Any

from services.runtime.llm import Exchange, LLMClient
from services.runtime.projection import ArchitectureView

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "number"}, "rationale": {"type": "string"}},
    "required": ["score", "rationale"],
}
SYSTEM = (
    "You judge candidate linear-attention token mixers. Score 0-10 weighing performance against the "
    "baseline (half the weight), innovation of the design (a quarter) and implementation complexity "
    "(a quarter, simpler is better). Anchors: DeltaNet scores 5, Gated DeltaNet scores 10. "
    "Answer with JSON: {\"score\": number, \"rationale\": one or two sentences}."
)


def prompt(arch: ArchitectureView, baselines: list[ArchitectureView]) -> str:
    r = arch.result
    measured = "; ".join(
        f"vs baseline {b.name}: val_loss {r['val_loss']:.4f} vs {b.result['val_loss']:.4f}, benchmarks "
        f"{r['benchmarks']} vs {b.result['benchmarks']}, params {r['params']} vs {b.result['params']}, "
        f"tokens/s {r['tokens_per_s']:.0f} vs {b.result['tokens_per_s']:.0f}" for b in baselines)
    return (f"Candidate {arch.name}: {arch.motivation}\n\nChange from its parent: {arch.mutation}\n\n"
            f"Measured: {measured}.\n\nCode:\n{arch.code}")


async def llm_quality(client: LLMClient, arch: ArchitectureView,
                      baselines: list[ArchitectureView]) -> tuple[tuple[float, str], Exchange]:
    exchange = await client.ask_json(SYSTEM, prompt(arch, baselines), schema_name="rubric", schema=SCHEMA)
    score = min(max(float(exchange.answer["score"]), 0.0), 10.0)
    return (score / 10.0, f"rubric {score:.1f}/10 by {client.label}: {exchange.answer['rationale']}"), exchange
