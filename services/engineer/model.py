"""The fixed language model every candidate mixer is trained in.

Embedding -> ``n_layers`` pre-norm blocks (``x + mixer(norm(x))``, then ``x + mlp(norm(x))``) ->
final norm -> head tied to the embedding.  Only the mixer changes between experiments, so a
difference in loss is the mixer's doing.  The mixer keeps its own initialisation (the papers'
gate inits matter; see FIELD-NOTES); the harness initialises only what it owns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from services.engineer.tasks import IGNORE


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    mlp_ratio: int = 2  # a 2x GELU MLP (4*d^2 weights) matches a mixer's budget, so it does not dominate

    def __post_init__(self) -> None:
        assert self.d_model % self.n_heads == 0, "d_model must split evenly into heads"


class MLP(nn.Module):
    def __init__(self, d_model: int, ratio: int) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, ratio * d_model, bias=False)
        self.down = nn.Linear(ratio * d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self, config: ModelConfig, mixer: nn.Module) -> None:
        super().__init__()
        self.mixer_norm = nn.RMSNorm(config.d_model)
        self.mixer = mixer
        self.mlp_norm = nn.RMSNorm(config.d_model)
        self.mlp = MLP(config.d_model, config.mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.mixer_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class LanguageModel(nn.Module):
    def __init__(self, config: ModelConfig, make_mixer: Callable[[int, int], nn.Module]) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        # Built before the blocks so the harness's init below cannot touch the mixers.
        mixers = [make_mixer(config.d_model, config.n_heads) for _ in range(config.n_layers)]
        self.blocks = nn.ModuleList(Block(config, mixer) for mixer in mixers)
        self.final_norm = nn.RMSNorm(config.d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)
        for block in self.blocks:
            nn.init.normal_(block.mlp.up.weight, std=0.02)
            # GPT-2's scaled init: residual writes shrink with depth so the stream stays O(1).
            nn.init.normal_(block.mlp.down.weight, std=0.02 / math.sqrt(2 * config.n_layers))

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final-norm hidden states ``[B, T, d_model]`` for token ids ``[B, T]``."""
        x = self.embedding(idx)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x)

    def forward(self, idx: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy over labelled positions, and the logits at those positions only.

        The tied head runs only where ``labels != IGNORE``: on task sequences that is a few
        positions per row, and skipping the rest is most of the head's cost.
        """
        h = self.hidden(idx)
        mask = labels != IGNORE
        logits = h[mask] @ self.embedding.weight.T  # [n_labelled, vocab]
        loss = F.cross_entropy(logits.float(), labels[mask])
        return loss, logits

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
