"""Gated DeltaNet (Yang et al., 2025, "Gated Delta Networks: Improving Mamba2 with Delta Rule").

The delta rule with Mamba2's forgetting: S_t = alpha_t S_{t-1} + beta_t k_t (v_t - alpha_t
S_{t-1}^T k_t)^T, alpha_t = exp(-exp(A_log) softplus(W_a x_t + dt_bias)) per head.  The gate
can clear memory quickly, the delta rule edits it precisely.  As the paper's layer: short
convolutions with SiLU on q, k, v; L2-normalised q and k; beta = sigmoid(W_b x); output
RMSNorm gated by silu(W_g x); gate init A_log = log U(1, 16), dt_bias from dt log-uniform in
[1e-3, 0.1].  Value expansion is 1 rather than 2 to keep the baselines' budgets equal.
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kernels import causal_conv1d, chunk_gated_delta_rule


class ShortConvolution(nn.Module):
    """Depthwise causal convolution over time, then SiLU: cheap local token mixing."""

    def __init__(self, channels: int, kernel_size: int = 4):
        super().__init__()
        # The Conv1d holds the weight (and its initialisation); kernels.causal_conv1d computes the
        # same left-padded convolution and SiLU without the transposes: position t sees t-3..t.
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, padding=kernel_size - 1, bias=False)

    def forward(self, x):
        y, _ = causal_conv1d(x, self.conv.weight[:, 0], activation="silu")
        return y


class Mixer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, conv_size: int = 4, dt_min: float = 1e-3,
                 dt_max: float = 0.1, norm_eps: float = 1e-5):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.a_proj = nn.Linear(d_model, n_heads, bias=False)
        self.b_proj = nn.Linear(d_model, n_heads, bias=False)
        self.g_proj = nn.Linear(d_model, d_model, bias=False)
        self.q_conv = ShortConvolution(d_model, conv_size)
        self.k_conv = ShortConvolution(d_model, conv_size)
        self.v_conv = ShortConvolution(d_model, conv_size)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=norm_eps)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)
        self.A_log = nn.Parameter(torch.empty(n_heads).uniform_(1, 16).log())
        dt = torch.exp(torch.empty(n_heads).uniform_(math.log(dt_min), math.log(dt_max))).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) == dt

    def forward(self, x):
        B, T, C = x.shape
        q = rearrange(self.q_conv(self.q_proj(x)), "b t (h d) -> b t h d", h=self.n_heads)
        k = rearrange(self.k_conv(self.k_proj(x)), "b t (h d) -> b t h d", h=self.n_heads)
        v = rearrange(self.v_conv(self.v_proj(x)), "b t (h d) -> b t h d", h=self.n_heads)
        q, k = F.normalize(q, p=2, dim=-1), F.normalize(k, p=2, dim=-1)
        beta = self.b_proj(x).sigmoid()  # [B, T, H]
        g = -self.A_log.exp() * F.softplus(self.a_proj(x) + self.dt_bias)  # [B, T, H] log-decay
        o, _ = chunk_gated_delta_rule(q, k, v, g, beta)
        o = rearrange(self.o_norm(o), "b t h d -> b t (h d)")
        return self.o_proj(o * F.silu(self.g_proj(x)))
