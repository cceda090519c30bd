"""Mamba2's state-space duality layer (Dao & Gu, 2024, "Transformers are SSMs"), scalar decay.

h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t^T, y_t = C_t^T h_t + D x_t: linear attention with
q = C, k = B, v = dt * x and a data-dependent scalar log-decay dt * A per head.  B and C are
shared by all heads (one group); a short causal convolution with SiLU runs over x, B and C;
the output passes through a gated RMSNorm, norm(y * silu(z)).  Initialisation as the paper's
code: A = -exp(A_log) with A_log = log U(1, 16), dt_bias the inverse softplus of dt drawn
log-uniformly from [1e-3, 0.1] (a naive gate init forgets within a few tokens; FIELD-NOTES).
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kernels import chunk_linear_attn


class Mixer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_state: int = 64, conv_size: int = 4,
                 dt_min: float = 1e-3, dt_max: float = 0.1, norm_eps: float = 1e-5):
        super().__init__()
        self.n_heads = n_heads
        self.d_inner = d_model
        self.d_state = d_state
        # One projection for the gate z, the input x, B, C and the per-head step dt.
        self.in_proj = nn.Linear(d_model, 2 * d_model + 2 * d_state + n_heads, bias=False)
        conv_channels = d_model + 2 * d_state
        self.conv = nn.Conv1d(conv_channels, conv_channels, conv_size, groups=conv_channels,
                              padding=conv_size - 1, bias=True)
        self.A_log = nn.Parameter(torch.empty(n_heads).uniform_(1, 16).log())
        dt = torch.exp(torch.empty(n_heads).uniform_(math.log(dt_min), math.log(dt_max))).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) == dt
        self.D = nn.Parameter(torch.ones(n_heads))
        self.norm = nn.RMSNorm(d_model, eps=norm_eps)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        z, xbc, dt = torch.split(self.in_proj(x), [self.d_inner, self.d_inner + 2 * self.d_state, self.n_heads], -1)
        xbc = F.silu(self.conv(xbc.transpose(1, 2))[..., :T].transpose(1, 2))  # causal: left padding only
        u, b, c = torch.split(xbc, [self.d_inner, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(dt + self.dt_bias)  # [B, T, H]
        g = -self.A_log.exp() * dt  # log-decay, <= 0
        u = rearrange(u, "b t (h p) -> b t h p", h=self.n_heads)
        q = c[:, :, None, :].expand(B, T, self.n_heads, self.d_state)
        k = b[:, :, None, :].expand(B, T, self.n_heads, self.d_state)
        y, _ = chunk_linear_attn(q, k, u * dt[..., None], g=g, scale=1.0)
        y = y + self.D[:, None] * u
        y = self.norm(rearrange(y, "b t h p -> b t (h p)") * F.silu(z))
        return self.out_proj(y)
