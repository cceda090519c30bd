"""The human-designed baselines, each a ``Mixer`` file under the same contract as a candidate."""

from __future__ import annotations

from pathlib import Path

BASELINES: tuple[str, ...] = (
    "softmax_attention",
    "linear_attention",
    "retnet",
    "mamba2",
    "gla",
    "deltanet",
    "gated_deltanet",
)
SEED_ARCHITECTURE = "deltanet"  # the search starts from it; its parameter count is the budget


def baseline_path(name: str) -> Path:
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known baselines: {', '.join(BASELINES)}")
    return Path(__file__).with_name(f"{name}.py")


def baseline_code(name: str) -> str:
    return baseline_path(name).read_text()
