"""Softmax attention (Vaswani et al., 2017) with rotary positions (Su et al., 2021): the Transformer.

The quadratic reference every linear mixer is measured against: each token attends to all
earlier tokens with softmax weights, at O(T^2) cost.  Exempt from the complexity probe.
Rotary embeddings on q and k, as in modern Transformers (Transformer++ in the linear-attention
papers); GPT-2's N(0, 0.02) initialisation.
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def rotary(x, base: float = 10000.0):
    """Rotate channel pairs of ``x`` [B, T, H, D] by position-dependent angles."""
    B, T, H, D = x.shape
    inv_freq = base ** (-torch.arange(0, D, 2, dtype=torch.float32, device=x.device) / D)
    angles = torch.arange(T, dtype=torch.float32, device=x.device)[:, None] * inv_freq  # [T, D/2]
    cos, sin = angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)


class Mixer(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, x):
        B, T, C = x.shape
        q = rotary(rearrange(self.q_proj(x), "b t (h d) -> b t h d", h=self.n_heads))
        k = rotary(rearrange(self.k_proj(x), "b t (h d) -> b t h d", h=self.n_heads))
        v = rearrange(self.v_proj(x), "b t (h d) -> b t h d", h=self.n_heads)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        return self.o_proj(rearrange(o, "b h t d -> b t (h d)"))
