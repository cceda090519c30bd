"""The gates every proposal passes before a training job is queued, whatever mind wrote it.

In order, cheapest first:

1. **novelty by embedding**: the motivation and the code are embedded with MiniLM
   (``services.cognition.embedder``) and compared by cosine similarity with every earlier
   proposal of the run that did not fail (a broken idea was never measured, so a working
   version of it is not a duplicate).  A similarity at or above the run's threshold rejects.
   MiniLM reads only its first 256 word pieces, so a whole file embeds as its imports and
   first class: measured on six evolve children of DeltaNet, four pairs of different designs
   scored 1.0000 that way.  The code is therefore normalised (comments and docstrings removed,
   layout by ``ast.unparse``) and cut into chunks of ``CODE_CHUNK_LINES`` lines; two files'
   similarity is the worst best match of any chunk of either in the other, so one changed
   chunk is enough to tell them apart (different designs: 0.31-0.998).
2. **validity**: the engineer's pre-flight probes (``services.engineer.harness.check_code``,
   sandboxed: build, forward/backward, finite, causal, complexity, parameter budget) run
   *before* the job is queued, so an invalid proposal never costs an experiment slot.  The
   same sandboxed run returns the functional fingerprint, computed there because the code
   may be untrusted (``services/researcher/novelty.py``).
3. **novelty by function**: the fingerprint equals an earlier proposal's, which catches a
   renamed or reordered duplicate that reads differently to the embedding.

Each failure is a ``Verdict`` that becomes a ``ProposalRejected`` event with its reason.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
from dataclasses import dataclass

from services.cognition.embedder import embed
from services.engineer.harness import check_code, static_check
from services.runtime.projection import ArchitectureView, RunView

# Defaults, each overridable per run (RunStarted). Measured with MiniLM: the evolve mind's
# templated motivations for different changes score up to 0.984 (scalar vs vector decay, both
# with an output gate, in a 10-experiment tiny run), a paraphrase of one idea above 0.9; code of
# different designs (chunked) 0.994 when they differ in one token (beta * 2) and 0.99991 for
# bias=False -> bias=True on the write strength (a real Qwen2.5-Coder-1.5B proposal, which 0.999
# rejected), code that differs only in comments, docstrings and layout 1.0 (within 4e-8). The
# embedding gate is therefore kept for near-verbatim repeats; paraphrased ideas and renamed code
# are the fingerprint's to catch.
MOTIVATION_THRESHOLD = 0.99
CODE_THRESHOLD = 0.99995
CODE_CHUNK_LINES = 8
REPAIRS = 2  # repair attempts of one failing proposal
IDEA_RETRIES = 2  # novelty rejections sent back to the mind before the iteration moves on
TRACEBACK_CHARS = 1500


@dataclass(frozen=True)
class GateSettings:
    motivation_threshold: float = MOTIVATION_THRESHOLD
    code_threshold: float = CODE_THRESHOLD
    repairs: int = REPAIRS
    idea_retries: int = IDEA_RETRIES

    @classmethod
    def of_run(cls, run: RunView) -> GateSettings:
        return cls(run.novelty_motivation_threshold or MOTIVATION_THRESHOLD,
                   run.novelty_code_threshold or CODE_THRESHOLD,
                   run.repairs or REPAIRS, run.idea_retries or IDEA_RETRIES)


@dataclass(frozen=True)
class Verdict:
    """A failed gate."""

    gate: str  # "novelty" | "validity"
    reason: str
    similar_to: str = ""
    similarity: float = 0.0
    failure_kind: str = ""  # validity: the probe's kind, e.g. "non_causal", "build_error"
    message: str = ""  # validity: the failure message as the engineer wrote it
    traceback: str = ""
    checks_json: str = ""


def normalise_code(code: str) -> str:
    """The code as the parser sees it, without comments and docstrings; unparsable code as it is."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def code_chunks(code: str) -> list[str]:
    lines = [line for line in normalise_code(code).splitlines() if line.strip()] or [""]
    return ["\n".join(lines[i:i + CODE_CHUNK_LINES]) for i in range(0, len(lines), CODE_CHUNK_LINES)]


class Embeddings:
    """MiniLM vectors of texts, computed once each (a run compares every proposal with all earlier ones)."""

    def __init__(self) -> None:
        self._cache: dict[str, list[float]] = {}

    def vectors(self, texts: list[str]) -> list[list[float]]:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if missing:
            by_key = dict(zip(keys, texts, strict=True))
            for key, vector in zip(missing, embed([by_key[k] for k in missing]), strict=True):
                self._cache[key] = vector
        return [self._cache[k] for k in keys]

    def nearest_code(self, code: str, earlier: list[tuple[str, str]]) -> tuple[str, float]:
        """``nearest`` for code: chunked, each file's similarity the worst best match of its chunks."""
        if not earlier:
            return "", 0.0
        mine = self.vectors(code_chunks(code))
        scores = []
        for _, other in earlier:
            theirs = self.vectors(code_chunks(other))
            cross = [[sum(a * b for a, b in zip(u, v, strict=True)) for v in theirs] for u in mine]
            scores.append(min(min(max(row) for row in cross), min(max(col) for col in zip(*cross, strict=True))))
        best = max(range(len(scores)), key=scores.__getitem__)
        return earlier[best][0], scores[best]

    def nearest(self, text: str, earlier: list[tuple[str, str]]) -> tuple[str, float]:
        """The id and cosine similarity of the earlier text most like ``text``; ("", 0.0) if none."""
        if not earlier:
            return "", 0.0
        query, *others = self.vectors([text, *(t for _, t in earlier)])
        scores = [sum(a * b for a, b in zip(query, v, strict=True)) for v in others]
        best = max(range(len(scores)), key=scores.__getitem__)
        return earlier[best][0], scores[best]


def comparable(archs: list[ArchitectureView], arch_id: str) -> list[ArchitectureView]:
    """The earlier proposals a new one must differ from: all but itself and those that failed (a
    validity rejection or a failed training): their idea was never measured, so a repaired
    version of it is not a duplicate."""
    return [a for a in archs if a.arch_id != arch_id and not (a.failure and a.failure.get("kind") != "novelty")]


@dataclass(frozen=True)
class Nearest:
    """The earlier proposals most like a new one by embedding, and their cosine similarities; the
    judge's novelty reads these (an empty id: nothing earlier to compare with)."""

    motivation_id: str = ""
    motivation_similarity: float = 0.0
    code_id: str = ""
    code_similarity: float = 0.0


def embedding_novelty(motivation: str, code: str, earlier: list[ArchitectureView], settings: GateSettings,
                      embeddings: Embeddings) -> tuple[Verdict | None, Nearest]:
    """A verdict if the motivation or the code is a near-verbatim repeat, and the nearest of each."""
    names = {a.arch_id: a.name for a in earlier}
    motivation_twin, motivation_similarity = embeddings.nearest(motivation,
                                                                [(a.arch_id, a.motivation) for a in earlier])
    code_twin, code_similarity = embeddings.nearest_code(code, [(a.arch_id, a.code) for a in earlier])
    nearest = Nearest(motivation_twin, motivation_similarity, code_twin, code_similarity)
    for what, twin, similarity, threshold in (
        ("motivation", motivation_twin, motivation_similarity, settings.motivation_threshold),
        ("code", code_twin, code_similarity, settings.code_threshold),
    ):
        if twin and similarity >= threshold:
            return Verdict("novelty", f"its {what} has cosine similarity {similarity:.4f} (threshold {threshold}) "
                                      f"to that of {twin} ({names[twin]})", similar_to=twin,
                           similarity=similarity), nearest
    return None, nearest


def contract_failure(code: str) -> dict | None:
    """The contract read statically, with a precise message: it parses, defines ``Mixer``, and keeps
    to the allowed imports and attributes (the engineer's ``static_check``)."""
    if not code.strip():
        return {"kind": "empty_code", "message": "the file is empty", "traceback": ""}
    rejected = static_check(code)
    if rejected:
        return rejected
    tree = ast.parse(code)
    defines = {n.name for n in tree.body if isinstance(n, ast.ClassDef)} | {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    if "Mixer" not in defines:
        return {"kind": "no_mixer", "message": "the file defines no `class Mixer(nn.Module)` at module level "
                                               f"(classes found: {sorted(defines) or 'none'})", "traceback": ""}
    return None


async def validity(code: str, profile: str) -> tuple[Verdict | None, str]:
    """The contract, then the pre-flight probes in the engineer's sandbox: a verdict if either
    failed, and the fingerprint."""
    broken = contract_failure(code)
    if broken:
        return Verdict("validity", f"the file breaks the contract ({broken['kind']}): {broken['message']}",
                       failure_kind=broken["kind"], message=broken["message"], traceback=broken["traceback"]), ""
    report = await asyncio.to_thread(check_code, code, profile=profile)
    if report["ok"]:
        return None, report["fingerprint"]
    failure = report.get("failure") or {"kind": "probe_failed", "message": "a probe failed", "traceback": ""}
    failed = [name for name, check in report["checks"].items() if not check.get("ok")]
    verdict = Verdict(
        "validity", f"pre-flight probe {', '.join(failed) or 'run'} failed ({failure['kind']}): "
                    f"{failure['message'][:400]}",
        failure_kind=failure["kind"], message=failure["message"],
        traceback=failure.get("traceback", "")[-TRACEBACK_CHARS:],
        checks_json=json.dumps(report["checks"], sort_keys=True, default=str))
    return verdict, ""


def fingerprint_novelty(fingerprint: str, earlier: list[ArchitectureView]) -> Verdict | None:
    twin = next((a for a in earlier if a.fingerprint and a.fingerprint == fingerprint), None)
    if twin is None:
        return None
    return Verdict("novelty", f"computes the same function as {twin.arch_id} ({twin.name}) on the probe batch",
                   similar_to=twin.arch_id, similarity=1.0)
