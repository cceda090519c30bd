"""Results planted after the pre-flight, as the leak rule's tests need: a small corpus folder and
a checkpoint of a tiny language model in the engineer's checkpoint format, stored by content hash."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import torch

from services.engineer.data import is_validation
from services.engineer.model import LanguageModel, ModelConfig
from services.engineer.profiles import get_profile
from services.engineer.sandbox_child import load_mixer


def corpus(root: Path, files: int = 24, *, duplicate: bool = False) -> Path:
    """Files of random words; with ``duplicate``, a validation file is also a training file."""
    rng = random.Random(5)
    words = ["def", "return", "self", "value", "import", "class", "for", "in", "if", "else", "yield", "with"]
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"module_{i}.py").write_text(" ".join(rng.choice(words) for _ in range(600)) + "\n")
    if duplicate:
        val = next(p for p in sorted(root.iterdir()) if is_validation(p.name))
        name = next(f"copy_{i}.py" for i in range(1000) if not is_validation(f"copy_{i}.py"))
        (root / name).write_bytes(val.read_bytes())
    return root


def checkpoint(code: str, data_dir: Path, profile: str = "tiny", seed: int = 0) -> str:
    """An untrained model of ``code`` saved as a checkpoint; returns its content hash."""
    spec = get_profile(profile)
    config = ModelConfig(spec.vocab_size, spec.d_model, spec.n_layers, spec.n_heads)
    torch.manual_seed(seed)
    model = LanguageModel(config, load_mixer(code, Path("candidate.py")))
    store = data_dir / "checkpoints"
    store.mkdir(parents=True, exist_ok=True)
    path = store / "planting.pt"
    torch.save({"code": code, "profile": profile, "seed": seed, "model_config": config.__dict__, "step": 0,
                "model": model.state_dict(), "val_loss": 0.0}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.replace(store / f"{digest}.pt")
    return digest
