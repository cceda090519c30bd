"""DeltaNet (Yang et al., 2024, "Parallelizing Linear Transformers with the Delta Rule").

The seed architecture of the search.  The state is written with the delta rule,
S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T, which replaces the value stored under
k_t instead of piling on top of it.  As in flash-linear-attention's layer: short causal
convolutions with SiLU on q, k, v; L2-normalised q and k (keeps the update a contraction);
beta = sigmoid(W_b x) per head; per-head RMSNorm on the output; no output gate.
"""

import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kernels import causal_conv1d, chunk_delta_rule


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
    def __init__(self, d_model: int, n_heads: int, conv_size: int = 4, norm_eps: float = 1e-5):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.b_proj = nn.Linear(d_model, n_heads, bias=False)
        self.q_conv = ShortConvolution(d_model, conv_size)
        self.k_conv = ShortConvolution(d_model, conv_size)
        self.v_conv = ShortConvolution(d_model, conv_size)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=norm_eps)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                # flash-linear-attention's layer init: small Xavier keeps early updates gentle.
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)

    def forward(self, x):
        B, T, C = x.shape
        q = rearrange(self.q_conv(self.q_proj(x)), "b t (h d) -> b t h d", h=self.n_heads)
        k = rearrange(self.k_conv(self.k_proj(x)), "b t (h d) -> b t h d", h=self.n_heads)
        v = rearrange(self.v_conv(self.v_proj(x)), "b t (h d) -> b t h d", h=self.n_heads)
        q, k = F.normalize(q, p=2, dim=-1), F.normalize(k, p=2, dim=-1)
        beta = self.b_proj(x).sigmoid()  # [B, T, H]: how strongly each token overwrites
        o, _ = chunk_delta_rule(q, k, v, beta)
        o = self.o_norm(o)
        return self.o_proj(rearrange(o, "b t h d -> b t (h d)"))
