"""Linear attention (Katharopoulos et al., 2020, "Transformers are RNNs").

Softmax's exp(q.k) is replaced by phi(q).phi(k) with phi = elu + 1 (positive, so the weights
stay a normalised average): o_t = phi(q_t)^T S_t / phi(q_t)^T z_t with S_t = sum k v^T and
z_t = sum phi(k).  The normaliser rides along as an extra all-ones value channel, so one
kernel call computes numerator and denominator.  No decay, no convolution, no gate.
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kernels import chunk_linear_attn


class Mixer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, eps: float = 1e-6):
        super().__init__()
        self.n_heads = n_heads
        self.eps = eps
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)

    def forward(self, x):
        B, T, C = x.shape
        q = F.elu(rearrange(self.q_proj(x), "b t (h d) -> b t h d", h=self.n_heads)) + 1
        k = F.elu(rearrange(self.k_proj(x), "b t (h d) -> b t h d", h=self.n_heads)) + 1
        v = rearrange(self.v_proj(x), "b t (h d) -> b t h d", h=self.n_heads)
        v_and_one = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # last channel accumulates phi(k)
        o, _ = chunk_linear_attn(q, k, v_and_one, scale=1.0)
        o = o[..., :-1] / (o[..., -1:] + self.eps)
        return self.o_proj(rearrange(o, "b t h d -> b t (h d)"))
