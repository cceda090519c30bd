"""Gated linear attention (Yang et al., 2024, "Gated Linear Attention Transformers").

Linear attention with a data-dependent decay per key channel:
S_t = diag(alpha_t) S_{t-1} + k_t v_t^T, with log alpha_t = logsigmoid(W2 W1 x_t + b) / 16 from
a rank-16 projection; the normaliser 16 keeps alpha near 1 so memory lasts.  As the paper:
keys at half the width (expand_k = 0.5), per-head RMSNorm on the output, swish output gate.
"""

import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kernels import chunk_linear_attn


class Mixer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, expand_k: float = 0.5, gate_low_rank: int = 16,
                 gate_logit_normalizer: float = 16.0, norm_eps: float = 1e-5):
        super().__init__()
        self.n_heads = n_heads
        self.key_dim = int(d_model * expand_k)
        self.head_v_dim = d_model // n_heads
        self.gate_logit_normalizer = gate_logit_normalizer
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.g_proj = nn.Linear(d_model, d_model, bias=False)
        self.gk_proj = nn.Sequential(nn.Linear(d_model, gate_low_rank, bias=False),
                                     nn.Linear(gate_low_rank, self.key_dim, bias=True))
        self.o_norm = nn.RMSNorm(self.head_v_dim, eps=norm_eps)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x):
        B, T, C = x.shape
        q = rearrange(self.q_proj(x), "b t (h d) -> b t h d", h=self.n_heads)
        k = rearrange(self.k_proj(x), "b t (h d) -> b t h d", h=self.n_heads)
        v = rearrange(self.v_proj(x), "b t (h d) -> b t h d", h=self.n_heads)
        gk = F.logsigmoid(self.gk_proj(x)) / self.gate_logit_normalizer
        gk = rearrange(gk, "b t (h d) -> b t h d", h=self.n_heads)  # [B, T, H, K] log-decay per channel
        o, _ = chunk_linear_attn(q, k, v, g=gk)
        o = rearrange(self.o_norm(o), "b t h d -> b t (h d)")
        return self.o_proj(F.silu(self.g_proj(x)) * o)
