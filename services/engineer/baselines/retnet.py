"""RetNet's multi-scale retention (Sun et al., 2023, "Retentive Network").

Linear attention with a fixed, per-head exponential decay gamma_h = 1 - 2^(-5-h): each head
forgets at its own rate (head 0 remembers ~32 tokens, later heads far longer).  Positions
enter through a rotation of q and k (xPos without its length-extrapolation scaling, i.e.
rotary); the output is normalised per head and gated by swish(W_g x).  Value expansion is 1
rather than the paper's 2 so that every baseline holds about the same parameter budget.
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kernels import chunk_linear_attn


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
    def __init__(self, d_model: int, n_heads: int, norm_eps: float = 1e-5):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.g_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=norm_eps)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        # The paper's decay schedule: a buffer, not a parameter; retention's rates are fixed.
        gamma = 1 - 2.0 ** (-5.0 - torch.arange(n_heads, dtype=torch.float32))
        self.register_buffer("log_gamma", gamma.log(), persistent=False)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)

    def forward(self, x):
        B, T, C = x.shape
        q = rotary(rearrange(self.q_proj(x), "b t (h d) -> b t h d", h=self.n_heads))
        k = rotary(rearrange(self.k_proj(x), "b t (h d) -> b t h d", h=self.n_heads))
        v = rearrange(self.v_proj(x), "b t (h d) -> b t h d", h=self.n_heads)
        g = self.log_gamma.expand(B, T, self.n_heads)  # [B, T, H], the same at every step
        o, _ = chunk_linear_attn(q, k, v, g=g)
        o = rearrange(self.o_norm(o), "b t h d -> b t (h d)")
        return self.o_proj(F.silu(self.g_proj(x)) * o)
