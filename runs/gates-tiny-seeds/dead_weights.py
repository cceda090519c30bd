"""A per-channel projection with a gate that forward never applies: dead weights."""
import torch
from torch import nn


class Mixer(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(d_model, 2 * d_model, bias=False),
                                  nn.Linear(2 * d_model, d_model, bias=False))
        self.gate = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
