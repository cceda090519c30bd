"""Linear-attention primitives with flash-linear-attention's conventions.

q, k: [B, T, H, K]; v: [B, T, H, V]; beta: [B, T, H]; log-space decay g: [B, T, H] or [B, T, H, K];
state: [B, H, K, V]. Every op returns (o, final_state or None). See kernels/README.md. The causal
short convolution takes x: [B, T, D] and a depthwise weight [D, W].
"""

from kernels.dispatch import (
    BACKEND_ENV_VAR,
    causal_conv1d,
    choose_backend,
    chunk_delta_rule,
    chunk_gated_delta_rule,
    chunk_linear_attn,
    recurrent_delta_rule,
    recurrent_gated_delta_rule,
    recurrent_linear_attn,
)

__all__ = [
    "BACKEND_ENV_VAR",
    "causal_conv1d",
    "choose_backend",
    "chunk_delta_rule",
    "chunk_gated_delta_rule",
    "chunk_linear_attn",
    "recurrent_delta_rule",
    "recurrent_gated_delta_rule",
    "recurrent_linear_attn",
]
