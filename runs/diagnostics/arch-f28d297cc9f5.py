"""delta-decay-scalar-gate-output-position-rotary-qkvinit-xavier-convsize-2

delta-decay-scalar-gate-output-position-rotary-qkvinit-xavier-convsize-2 changes delta-
decay-scalar-gate-output-position-rotary-convsize-2 (arch-b0aba3d8f084, fitness 0.358):
qkv_init from inherit to xavier. It now uses the query, key and value projections re-
drawn Xavier-uniform at gain 1 instead of the query, key and value projections
initialised as the other linear layers. The move is exploratory: a step on this axis
from the parent's value. Introducing it has so far raised fitness 2 time(s) and lowered
it 2 time(s) in this run.

Design:
- update=delta: error-correcting delta-rule writes that replace what a key already stores
- decay=scalar: a data-dependent per-head decay gate (Mamba2, Gated DeltaNet)
- conv=short: a causal depthwise short convolution with SiLU
- conv_on=qkv: the short convolution on queries, keys and values
- conv_bias=none: a convolution without bias
- gate=output: a SiLU output gate computed from the layer input
- qk_norm=l2: L2-normalised queries and keys
- feature_map=identity: no feature map on queries and keys
- beta_range=0_1: a write strength beta in (0, 1)
- out_norm=rms: a per-head RMSNorm on the output, before the gate
- path=single: a single recurrent path
- position=rotary: rotary positions on queries and keys
- qk_heads=per_head: queries and keys per head
- skip=none: no skip connection inside the mixer
- input_scale=none: values written as they are
- init=xavier_small: Xavier-uniform linear layers with gain 2^-2.5 (flash-linear-attention)
- qkv_init=xavier: the query, key and value projections re-drawn Xavier-uniform at gain 1
- qk_scale=inv_sqrt: q.k scaled by 1/sqrt(key dim)
- layout=separate: one projection per role
- conv_size=2: a short-convolution kernel of 2 tokens
- heads=1: 1 times the profile's heads
- expand_k=1: keys 1 times the model width
- expand_v=1: values 1 times the model width
- a_min=1: decay rates A drawn from at least 1
- a_max=16: decay rates A drawn up to 16
- dt_min=0.001: decay steps dt drawn log-uniformly from 0.001
- dt_max=0.1: decay steps dt drawn log-uniformly up to 0.1
- beta_bias=0: a write-strength logit starting at 0
- householder=1: 1 delta-rule (Householder) steps per token
"""

# Axes not named on the next line are at DeltaNet's values.
# asi-arch components: decay=scalar gate=output position=rotary qkv_init=xavier conv_size=2

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kernels import causal_conv1d, chunk_gated_delta_rule


class ShortConv(nn.Module):
    """Causal depthwise convolution over time, then SiLU: each channel mixes its last `kernel_size` steps."""

    def __init__(self, channels: int, kernel_size: int, bias: bool = False):
        super().__init__()
        # The Conv1d holds the weight and its initialisation; kernels.causal_conv1d computes the same
        # left-padded convolution without the transposes: position t sees t - kernel_size + 1 .. t.
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, padding=kernel_size - 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv.bias is None:
            return causal_conv1d(x, self.conv.weight[:, 0], activation="silu")[0]  # [B, T, C]
        y, _ = causal_conv1d(x, self.conv.weight[:, 0])
        return F.silu(y + self.conv.bias)


def rotary(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs of ``x`` [B, T, H, D] by position-dependent angles."""
    B, T, H, D = x.shape
    inv_freq = base ** (-torch.arange(0, D, 2, dtype=torch.float32, device=x.device) / D)
    angles = torch.arange(T, dtype=torch.float32, device=x.device)[:, None] * inv_freq  # [T, D/2]
    cos, sin = angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)


class Mixer(nn.Module):
    """Token mixer: delta rule, scalar decay. The module docstring lists every component."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.key_dim = d_model
        self.value_dim = d_model
        assert self.value_dim % self.n_heads == 0 and self.key_dim % self.n_heads == 0, "widths must split evenly into heads"
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.a_proj = nn.Linear(d_model, self.n_heads, bias=False)  # the decay's step, per head
        self.b_proj = nn.Linear(d_model, self.n_heads, bias=False)  # write strength
        self.g_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.q_conv = ShortConv(self.key_dim, 2)
        self.k_conv = ShortConv(self.key_dim, 2)
        self.v_conv = ShortConv(self.value_dim, 2)
        self.o_norm = nn.RMSNorm(self.value_dim // self.n_heads, eps=1e-5)
        self.o_proj = nn.Linear(self.value_dim, d_model, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)  # flash-linear-attention's init
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(proj.weight, gain=1.0)  # the rest of the layer keeps its scale
        # The Mamba2 / Gated DeltaNet gate. Its initialisation matters: a zero-initialised gate
        # decays by about 0.5 per token and erases the memory within a few tokens.
        self.A_log = nn.Parameter(torch.empty(self.n_heads).uniform_(1.0, 16.0).log())
        dt = torch.exp(torch.empty(self.n_heads).uniform_(math.log(0.001), math.log(0.1))).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) == dt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q, k, v = self.q_conv(q), self.k_conv(k), self.v_conv(v)
        q = rearrange(q, "b t (h d) -> b t h d", h=self.n_heads)
        k = rearrange(k, "b t (h d) -> b t h d", h=self.n_heads)
        v = rearrange(v, "b t (h d) -> b t h d", h=self.n_heads)
        q, k = F.normalize(q, p=2, dim=-1), F.normalize(k, p=2, dim=-1)
        q, k = rotary(q), rotary(k)
        beta = self.b_proj(x).sigmoid()  # [B, T, H] in (0, 1)
        dt = F.softplus(self.a_proj(x) + self.dt_bias)  # [B, T, H] step of the decay
        g = -self.A_log.exp() * dt  # [B, T, H] log-decay, <= 0
        o, _ = chunk_gated_delta_rule(q, k, v, g, beta)  # [B, T, H, V]
        o = self.o_norm(o)
        o = rearrange(o, "b t h d -> b t (h d)")
        o = o * F.silu(self.g_proj(x))
        return self.o_proj(o)
