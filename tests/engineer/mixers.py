"""Small candidate files for the tests: each breaks exactly one rule, except CAUSAL_MEAN."""

HEADER = """import torch
from torch import nn


class Mixer(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        # d -> 2d -> d: DeltaNet's ~4 d^2 budget, every parameter used by whatever forward returns
        self.proj = nn.Sequential(nn.Linear(d_model, 2 * d_model, bias=False),
                                  nn.Linear(2 * d_model, d_model, bias=False))
"""


def mixer(forward_body: str, init_extra: str = "") -> str:
    """A Mixer whose forward runs ``forward_body``, with extra ``__init__`` lines."""
    init = "".join(f"        {line}\n" for line in init_extra.splitlines())
    body = "".join(f"        {line}\n" for line in forward_body.splitlines())
    return f"{HEADER}{init}\n    def forward(self, x):\n{body}"


# Valid: a causal running mean of a projection; linear in T and within the parameter budget.
CAUSAL_MEAN = mixer(
    "B, T, C = x.shape\n"
    "counts = torch.arange(1, T + 1, dtype=x.dtype)[None, :, None]\n"
    "return self.proj(x.cumsum(1) / counts)"
)
# Sums the future: a reverse cumulative sum.
FUTURE_SUM = mixer("return self.proj(x.flip(1).cumsum(1).flip(1))")
# Divides by the sequence's length: every output knows how many tokens will follow.
BY_LENGTH = mixer("B, T, C = x.shape\nreturn self.proj(x.cumsum(1) / T)")
# Normalises over the batch: each row's output depends on the other rows.
BATCH_CENTRED = mixer("return self.proj(x - x.mean(dim=0, keepdim=True))")
# Causal attention without softmax: a T x T score matrix from a matmul.
MATMUL_ATTENTION = mixer(
    "B, T, C = x.shape\n"
    "scores = (x @ x.transpose(1, 2)).tril() / C\n"
    "return self.proj(scores @ x)"
)
# Quadratic without any matmul: a Python loop over prefixes (step t reads t tokens).
PREFIX_LOOP = mixer(
    "B, T, C = x.shape\n"
    "rows = [x[:, : t + 1].amax(dim=1) for t in range(T)]\n"
    "return self.proj(torch.stack(rows, dim=1))"
)
NON_FINITE = mixer("return self.proj(x) / 0")
TOO_MANY_PARAMS = mixer("return self.proj(x) + self.big(x)[..., : x.shape[-1]]",
                        init_extra="self.big = nn.Linear(d_model, 16 * d_model, bias=False)")
WRONG_SHAPE = mixer("return self.proj(x)[:, :-1]")
# DeltaNet's budget, but half of it is never used: the output does not reach `unused`.
DEAD_WEIGHTS = mixer("return self.proj(x)", init_extra="self.unused = nn.Linear(d_model, d_model)")
BROKEN_INIT = mixer("return x", init_extra="self.proj = nn.Linear(d_model, d_model // 0)")
NO_MIXER_CLASS = "import torch\n\n\nclass Layer(torch.nn.Module):\n    pass\n"
SYNTAX_ERROR = "import torch\n\nclass Mixer(torch.nn.Module)\n    pass\n"
INFINITE_LOOP = mixer("while True:\n    x = x + 1\nreturn x")
HUGE_ALLOCATION = mixer("return x", init_extra="self.table = torch.empty(1 << 40)")
GROWING_ALLOCATION = mixer("return x", init_extra="self.hoard = [torch.empty(1 << 27) for _ in range(10_000)]")
