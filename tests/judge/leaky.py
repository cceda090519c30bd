"""A candidate that is causal on short inputs and peeks at the next token on long ones: it passes
the short causal probe (48 tokens) and, unchecked, trains to a loss far below any baseline."""

from tests.engineer.mixers import mixer

PEEK_AFTER = 64  # longer than every input of the short probes (37, 48, 64 tokens)
LONG_RANGE_PEEK = mixer(
    "B, T, C = x.shape\n"
    "v = x\n"
    "counts = torch.arange(1, T + 1, dtype=x.dtype)[None, :, None]\n"
    "y = v.cumsum(1) / counts\n"
    f"if T > {PEEK_AFTER}:\n"
    "    y = y + torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1)\n"
    "return self.proj(y)"
)
