"""The leak rule: a result too good to trust is checked before it is judged.

A validation loss more than ``LEAK_MARGIN`` below the best baseline's triggers two checks, and
both their figures go into a ``LeakChecked`` event:

- **causality at full length, of the trained model**: the checkpoint is loaded in the sandbox
  and the whole language model's hidden states at and before t must not move when the tokens
  after t are replaced, at the profile's training length (``probes.trained_model_causality``);
- **split overlap**: no validation file of non-trivial size may also be a training file (content
  hashes), and no more than ``NGRAM_SHARE_LIMIT`` of long validation n-grams, sampled evenly,
  may occur verbatim in the training split.

Either failing is a leak: the architecture is discarded with reason ``leak`` and the evidence.
Otherwise the result is marked verified and judged as usual. Nothing is dropped silently.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from services.engineer.data import corpus_files, default_corpus, is_validation, prepare_corpus
from services.engineer.harness import CHECK_MEMORY_MB, CHECK_TIMEOUT_S
from services.engineer.probes import training_length
from services.engineer.profiles import get_profile
from services.engineer.sandbox import Limits, run_sandboxed

LEAK_MARGIN = 0.10  # a loss this far below the best baseline's is a claim that needs evidence
MIN_FILE_BYTES = 256  # shorter duplicates (empty __init__.py, two-line stubs) cannot move a loss
NGRAM_BYTES = 256  # a verbatim run this long is copying, not a shared idiom
NGRAM_SAMPLES = 64
NGRAM_SHARE_LIMIT = 0.10


def trigger(result: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The trigger's figures when the rule applies, else None."""
    if not baselines:
        return None
    best = min(baselines, key=lambda name: baselines[name]["val_loss"])
    best_loss = baselines[best]["val_loss"]
    gain = (best_loss - result["val_loss"]) / best_loss
    if gain <= LEAK_MARGIN:
        return None
    return {"val_loss": result["val_loss"], "best_baseline": best, "best_baseline_val_loss": best_loss,
            "relative_gain": gain, "margin": LEAK_MARGIN}


@functools.cache
def split_overlap(corpus: str, data_dir: Path) -> dict[str, Any]:
    """Overlap between the corpus's validation and training splits (cached: the split is the run's)."""
    root = Path(corpus).resolve() if corpus else None
    train_path, val_path = prepare_corpus(root, data_dir)
    evidence: dict[str, Any] = {"duplicate_files": [], "duplicate_bytes": 0}
    if root is None or root.is_dir():
        base = root or default_corpus().resolve()
        train_hashes: dict[str, str] = {}
        validation: list[tuple[str, str, int]] = []
        for path in corpus_files(base):
            content = path.read_bytes()
            digest, relative = hashlib.sha256(content).hexdigest(), str(path.relative_to(base))
            if is_validation(relative):
                validation.append((relative, digest, len(content)))
            else:
                train_hashes.setdefault(digest, relative)
        for relative, digest, size in validation:
            if digest in train_hashes:
                evidence["duplicate_files"].append({"validation": relative, "training": train_hashes[digest],
                                                    "bytes": size})
                evidence["duplicate_bytes"] += size
        evidence["validation_files"] = len(validation)
    train, val = train_path.read_bytes(), val_path.read_bytes()
    span = len(val) - NGRAM_BYTES
    starts = [round(i * span / max(1, NGRAM_SAMPLES - 1)) for i in range(NGRAM_SAMPLES)] if span > 0 else []
    found = sum(val[s : s + NGRAM_BYTES] in train for s in starts)
    evidence.update(ngram_bytes=NGRAM_BYTES, ngram_samples=len(starts), ngrams_in_training=found,
                    ngram_share=found / len(starts) if starts else 0.0, validation_bytes=len(val))
    big = [d for d in evidence["duplicate_files"] if d["bytes"] >= MIN_FILE_BYTES]
    evidence["overlaps"] = bool(big) or evidence["ngram_share"] > NGRAM_SHARE_LIMIT
    evidence["rule"] = (f"no validation file of {MIN_FILE_BYTES}+ bytes also in training, and at most "
                        f"{NGRAM_SHARE_LIMIT:.0%} of {NGRAM_BYTES}-byte validation windows verbatim in training")
    return evidence


def causality_recheck(code: str, checkpoint: Path, profile: str, corpus: str, data_dir: Path) -> dict[str, Any]:
    """The trained model's causality at the profile's training length, measured in the sandbox."""
    _, val_path = prepare_corpus(Path(corpus).resolve() if corpus else None, data_dir)
    if not checkpoint.exists():
        return {"causal": False, "error": f"checkpoint {checkpoint.name} is missing: nothing can vouch for it"}
    request = {"checkpoint": str(checkpoint.resolve()), "val_path": str(val_path.resolve()),
               "length": training_length(get_profile(profile))}
    events = run_sandboxed(request, code, Limits(timeout_s=CHECK_TIMEOUT_S, memory_mb=CHECK_MEMORY_MB, threads=1),
                           child="services.judge.leak_child")
    last = events[-1]
    if last["event"] == "failure":
        return {"causal": False, "error": f"{last['kind']}: {last['message']}"}
    return {k: v for k, v in last.items() if k != "event"}


def verdict(causality: dict[str, Any], overlap: dict[str, Any]) -> tuple[str, str]:
    """("leak" | "verified", the reason in words)."""
    reasons = []
    if not causality.get("causal"):
        where = causality.get("leaking_positions")
        reasons.append(f"the trained model is not causal at length {causality.get('length', '?')}"
                       + (f" (positions {where} see later tokens, relative change "
                          f"{causality['max_relative_change']:.3g})" if where else f": {causality.get('error', '')}"))
    if overlap["overlaps"]:
        reasons.append(f"the validation split overlaps training ({len(overlap['duplicate_files'])} duplicate files, "
                       f"{overlap['ngram_share']:.0%} of sampled {overlap['ngram_bytes']}-byte windows)")
    if reasons:
        return "leak", "; ".join(reasons)
    return "verified", (f"causal at length {causality['length']} after training (max relative change "
                        f"{causality['max_relative_change']:.3g}) and no split overlap "
                        f"({overlap['ngram_share']:.0%} of sampled windows in training)")
