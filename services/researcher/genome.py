"""A token mixer described by its components, and the code that realises it.

The offline researcher does not write code token by token: it picks one value on each
axis of the fixed vocabulary (``services/runtime/vocabulary.py``) and :func:`render`
turns that choice into a complete candidate file that honours the architecture
contract (``class Mixer(torch.nn.Module)``, ``__init__(self, d_model, n_heads)``,
``forward`` mapping ``[B, T, d_model]`` to the same shape, causally; imports limited
to ``torch``, ``math``, ``einops`` and the project's ``kernels``).

Every value is a real code difference, not a renamed constant:

- ``update``: ``linear`` calls ``chunk_linear_attn`` (additive writes); ``delta`` calls
  the delta rule with a per-head, per-token write strength ``beta = sigmoid(b_proj(x))``
  (times 2 for ``beta_range=0_2``, which admits negative eigenvalues of the transition).
- ``decay``: ``fixed`` is RetNet's per-head constant log-decay ``log(1 - 2^(-5 - h))``;
  ``scalar`` is the Mamba2 / Gated DeltaNet gate with the papers' initialisation;
  ``vector`` is GLA's low-rank per-key-channel gate ``logsigmoid(.) / 16``.
- ``conv``: a causal depthwise convolution (kernel 4) on q, k and v, with SiLU on v.
- ``feature_map``: applied to q and k after the convolution.  With ``conv=short`` and
  ``feature_map=silu`` this is exactly DeltaNet's "SiLU after the short convolution".
- ``qk_norm``: L2 normalisation of q and k per head.
- ``out_norm``: a per-head RMSNorm on the mixer output.
- ``gate``: a SiLU output gate computed from the layer input.
- ``path``: ``local_global`` adds a causal sliding-window softmax branch (window 64,
  computed block by block so the cost stays linear in T), mixed per head with the
  recurrent path through a learned weight.

Combinations that would not make sense are excluded by :func:`validate` (see
``RULES``) rather than rendered into something surprising.

The components are written into the file as a structured comment, so a parent's code
is enough to derive a child: :func:`components_of` reads them back.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from services.runtime.vocabulary import COMPONENTS, parse_tag, tag

# DeltaNet (Yang et al., 2024), the seed of the search.
SEED_COMPONENTS: dict[str, str] = {
    "update": "delta",
    "decay": "none",
    "conv": "short",
    "gate": "none",
    "qk_norm": "l2",
    "feature_map": "silu",
    "beta_range": "0_1",
    "out_norm": "rms",
    "path": "single",
}

# One sentence per component value, in words a reader of the papers recognises; used in
# motivations and in the rendered file's docstring.
COMPONENT_NOTES: dict[tuple[str, str], str] = {
    ("update", "linear"): "additive state writes, as in linear attention",
    ("update", "delta"): "error-correcting delta-rule writes that replace what a key already stores",
    ("decay", "none"): "no forgetting: the state only changes by writes",
    ("decay", "fixed"): "RetNet's fixed per-head exponential decay",
    ("decay", "scalar"): "a data-dependent per-head decay gate (Mamba2, Gated DeltaNet)",
    ("decay", "vector"): "a data-dependent per-key-channel decay gate (GLA)",
    ("conv", "none"): "no short convolution",
    ("conv", "short"): "a causal depthwise short convolution (kernel 4) on q, k and v",
    ("gate", "none"): "no output gate",
    ("gate", "output"): "a SiLU output gate computed from the layer input",
    ("qk_norm", "none"): "unnormalised queries and keys",
    ("qk_norm", "l2"): "L2-normalised queries and keys",
    ("feature_map", "identity"): "no feature map on queries and keys",
    ("feature_map", "elu1"): "the ELU+1 feature map on queries and keys",
    ("feature_map", "silu"): "the SiLU feature map on queries and keys",
    ("feature_map", "relu"): "the ReLU feature map on queries and keys",
    ("beta_range", "0_1"): "a write strength beta in (0, 1)",
    ("beta_range", "0_2"): "a write strength beta in (0, 2), admitting negative eigenvalues",
    ("out_norm", "none"): "no output normalisation",
    ("out_norm", "rms"): "a per-head RMSNorm on the output",
    ("path", "single"): "a single recurrent path",
    ("path", "local_global"): "a causal sliding-window softmax path beside the recurrent one",
}

HEADER_PREFIX = "# asi-arch components:"


@dataclass(frozen=True)
class Rule:
    """``if_tag`` forbids ``forbidden_tag``, for the stated reason."""

    if_tag: str
    forbidden_tag: str
    why: str


RULES: tuple[Rule, ...] = (
    Rule("update=delta", "qk_norm=none", "the delta rule is only stable with unit-norm keys"),
    Rule("update=delta", "decay=vector", "the gated delta rule takes one decay per head, not per channel"),
    Rule("update=linear", "beta_range=0_2", "beta exists only under the delta rule"),
)


def problems(components: dict[str, str]) -> list[str]:
    """Everything that keeps ``components`` from being a valid design; empty when valid."""
    found = [f"unknown axis {axis!r}" for axis in components if axis not in COMPONENTS]
    for axis, values in COMPONENTS.items():
        if axis not in components:
            found.append(f"missing axis {axis!r}")
        elif components[axis] not in values:
            found.append(f"unknown value {components[axis]!r} for {axis!r}; known: {values}")
    if found:
        return found
    tags = {tag(axis, value) for axis, value in components.items()}
    return [
        f"{rule.if_tag} excludes {rule.forbidden_tag}: {rule.why}"
        for rule in RULES
        if rule.if_tag in tags and rule.forbidden_tag in tags
    ]


def validate(components: dict[str, str]) -> None:
    """Raise ``ValueError`` naming every problem if ``components`` is not a valid design."""
    found = problems(components)
    if found:
        raise ValueError("invalid components: " + "; ".join(found))


def make_valid(components: dict[str, str], keep: str) -> dict[str, str]:
    """The nearest valid design that keeps the value on axis ``keep``.

    Each violated rule is resolved by moving whichever of its two axes is not ``keep``
    to the value the rule allows (the delta rule gets L2 keys and a per-head decay;
    linear attention gets the plain beta range).
    """
    fixed = dict(components)
    # Resolving one rule can break another (update=linear after qk_norm=none forbids beta 0_2);
    # each move goes to an allowed value, so this settles within one pass per rule.
    for _ in range(len(RULES) + 1):
        violated = [
            rule
            for rule in RULES
            if all(fixed[axis] == value for axis, value in map(parse_tag, (rule.if_tag, rule.forbidden_tag)))
        ]
        if not violated:
            break
        rule = violated[0]
        moved = rule.forbidden_tag if parse_tag(rule.forbidden_tag)[0] != keep else rule.if_tag
        axis, _value = parse_tag(moved)
        fixed[axis] = _ALLOWED_INSTEAD[moved]
    validate(fixed)
    return fixed


# What to move an axis to when a rule forbids its value.
_ALLOWED_INSTEAD: dict[str, str] = {
    "qk_norm=none": "l2",
    "decay=vector": "scalar",
    "beta_range=0_2": "0_1",
    "update=delta": "linear",
    "update=linear": "delta",
}


def signature(components: dict[str, str]) -> str:
    """The canonical one-line form of a design, in vocabulary order: equal designs, equal strings."""
    return " ".join(tag(axis, components[axis]) for axis in COMPONENTS)


def components_of(code: str) -> dict[str, str]:
    """Read the components back from a file written by :func:`render`."""
    match = re.search(rf"^{re.escape(HEADER_PREFIX)}(.*)$", code, flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"no {HEADER_PREFIX!r} line: this code was not rendered from a genome")
    components = dict(parse_tag(text) for text in match.group(1).split())
    validate(components)
    return components


def name_of(components: dict[str, str]) -> str:
    """A short descriptive name: the update rule, then every choice that is not DeltaNet's default."""
    c = components
    parts = [c["update"]]
    if c["decay"] != "none":
        parts.append(f"{c['decay']}-decay")
    if c["beta_range"] == "0_2":
        parts.append("beta2")
    if c["feature_map"] != "silu":
        parts.append(f"{c['feature_map']}-fm")
    if c["qk_norm"] == "none":
        parts.append("unnormed-qk")
    if c["conv"] == "none":
        parts.append("noconv")
    if c["out_norm"] == "none":
        parts.append("no-outnorm")
    if c["gate"] == "output":
        parts.append("outgate")
    if c["path"] == "local_global":
        parts.append("local")
    return "-".join(parts)


def render(components: dict[str, str], name: str, motivation: str) -> str:
    """A complete, readable candidate source file for ``components``."""
    validate(components)
    c = components
    delta = c["update"] == "delta"
    decay = c["decay"]
    conv = c["conv"] == "short"
    local = c["path"] == "local_global"

    kernel = "chunk_linear_attn"
    if delta:
        kernel = "chunk_delta_rule" if decay == "none" else "chunk_gated_delta_rule"
    needs_math = decay == "scalar" or local

    docstring = _docstring(name, motivation, c)
    imports = ["import math", ""] if needs_math else []
    imports += [
        "import torch",
        "import torch.nn.functional as F",
        "from einops import rearrange",
        "from torch import nn",
        "",
        f"from kernels import {kernel}",
    ]
    sections = [docstring + "\n\n" + f"{HEADER_PREFIX} {signature(c)}\n\n" + "\n".join(imports)]
    if conv:
        sections.append(_SHORT_CONV)
    if local:
        sections.append(_SLIDING_WINDOW)
    sections.append(_mixer_class(c, kernel))
    return "\n\n\n".join(section.strip("\n") for section in sections) + "\n"


def _docstring(name: str, motivation: str, c: dict[str, str]) -> str:
    # The motivation is free text: keep it from closing the docstring or escaping.
    safe = motivation.replace("\\", "/").replace('"""', "'''").strip()
    paragraphs = [textwrap.fill(p, width=88) for p in safe.split("\n\n") if p.strip()]
    design = [f"- {axis}={c[axis]}: {COMPONENT_NOTES[(axis, c[axis])]}" for axis in COMPONENTS]
    body = "\n\n".join([name, *paragraphs, "Design:\n" + "\n".join(design)])
    return f'"""{body}\n"""'


_SHORT_CONV = '''
class ShortConv(nn.Module):
    """Causal depthwise convolution over time: each channel mixes its last `kernel_size` steps."""

    def __init__(self, channels: int, kernel_size: int = 4):
        super().__init__()
        # Padding on both sides, then keeping the first T outputs, pads only the past.
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, padding=kernel_size - 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        y = self.conv(x.transpose(1, 2))  # [B, C, T + kernel_size - 1]
        return y[..., :T].transpose(1, 2)  # [B, T, C]
'''

_SLIDING_WINDOW = '''
def sliding_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Causal softmax attention over the last `window` tokens (the current one included).

    q, k, v: [B, T, H, D]. Time is cut into blocks of `window` tokens; each block attends
    to itself and to the block before it, so the cost is O(T * window), linear in T.
    """
    B, T, H, D = q.shape
    n_blocks = math.ceil(T / window)
    pad = n_blocks * window - T  # padding at the end is never attended: it lies in the future
    q, k, v = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (q, k, v))
    q, k, v = (rearrange(t, "b (n w) h d -> b h n w d", w=window) for t in (q, k, v))
    # Keys and values of the previous block beside the block's own: [B, H, n, 2 * window, D].
    k = torch.cat([F.pad(k, (0, 0, 0, 0, 1, 0))[:, :, :-1], k], dim=3)
    v = torch.cat([F.pad(v, (0, 0, 0, 0, 1, 0))[:, :, :-1], v], dim=3)
    scores = torch.einsum("bhnid,bhnjd->bhnij", q, k) / math.sqrt(D)  # [B, H, n, window, 2 * window]
    # Query i of block n sits at n * window + i, key j at (n - 1) * window + j: it is visible when
    # it is not in the future (j <= i + window) and within the window (j > i).
    i = torch.arange(window, device=q.device)[:, None]
    j = torch.arange(2 * window, device=q.device)[None, :]
    visible = (j > i) & (j <= i + window)  # [window, 2 * window]
    visible = visible.expand(n_blocks, window, 2 * window).clone()
    visible[0, :, :window] = False  # the first block has no previous block, only padding
    scores = scores.masked_fill(~visible, float("-inf"))
    o = torch.einsum("bhnij,bhnjd->bhnid", scores.softmax(dim=-1), v)
    return rearrange(o, "b h n w d -> b (n w) h d")[:, :T]
'''


def _mixer_class(c: dict[str, str], kernel: str) -> str:
    delta = c["update"] == "delta"
    decay = c["decay"]
    conv = c["conv"] == "short"
    local = c["path"] == "local_global"
    gate = c["gate"] == "output"
    out_norm = c["out_norm"] == "rms"

    summary = {"linear": "linear attention", "delta": "delta rule"}[c["update"]]
    if decay != "none":
        summary += f", {decay} decay"
    signature_args = "d_model: int, n_heads: int, window: int = 64" if local else "d_model: int, n_heads: int"
    init = [
        f"def __init__(self, {signature_args}):",
        "    super().__init__()",
        '    assert d_model % n_heads == 0, "d_model must split evenly into heads"',
        "    self.n_heads = n_heads",
        "    self.head_dim = d_model // n_heads",
        "    self.q_proj = nn.Linear(d_model, d_model, bias=False)",
        "    self.k_proj = nn.Linear(d_model, d_model, bias=False)",
        "    self.v_proj = nn.Linear(d_model, d_model, bias=False)",
    ]
    if conv:
        init += [
            "    self.q_conv = ShortConv(d_model)",
            "    self.k_conv = ShortConv(d_model)",
            "    self.v_conv = ShortConv(d_model)",
        ]
    if delta:
        init += [
            "    # Write strength per head and token.",
            "    self.b_proj = nn.Linear(d_model, n_heads, bias=False)",
        ]
    if decay == "fixed":
        init += [
            "    # RetNet's decays: gamma_h = 1 - 2^(-5 - h), from slow-forgetting to fast-forgetting heads.",
            "    gamma = 1 - 2.0 ** (-5 - torch.arange(n_heads, dtype=torch.float32))",
            '    self.register_buffer("log_decay", torch.log(gamma), persistent=False)  # [H]',
        ]
    elif decay == "scalar":
        init += [
            "    # Mamba2 / Gated DeltaNet gate. Their initialisation matters: a zero-initialised gate",
            "    # decays by about 0.5 per token and erases the memory within a few tokens.",
            "    self.a_proj = nn.Linear(d_model, n_heads, bias=False)",
            "    A = torch.empty(n_heads).uniform_(1, 16)",
            "    self.A_log = nn.Parameter(torch.log(A))",
            "    dt_min, dt_max = 1e-3, 0.1",
            "    # dt log-uniform in [dt_min, dt_max].",
            "    log_dt = torch.rand(n_heads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)",
            "    dt = log_dt.exp().clamp(min=1e-4)",
            "    self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) = dt",
        ]
    elif decay == "vector":
        init += [
            "    # GLA's low-rank gate: one decay per key channel, from a rank-16 projection.",
            "    self.gk_proj = nn.Sequential(nn.Linear(d_model, 16, bias=False), nn.Linear(16, d_model))",
        ]
    if local:
        init += [
            "    self.window = window",
            "    # Per-head weight of the local path; sigmoid(0) = 0.5 starts from an even mix.",
            "    self.local_mix = nn.Parameter(torch.zeros(n_heads))",
        ]
    if out_norm:
        init.append("    self.o_norm = nn.RMSNorm(self.head_dim, eps=1e-5)")
    if gate:
        init.append("    self.g_proj = nn.Linear(d_model, d_model, bias=False)")
    init.append("    self.o_proj = nn.Linear(d_model, d_model, bias=False)")

    fwd = [
        "def forward(self, x: torch.Tensor) -> torch.Tensor:",
        "    B, T, C = x.shape",
        "    q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)  # [B, T, C] each",
    ]
    if conv:
        fwd.append("    q, k, v = self.q_conv(q), self.k_conv(k), F.silu(self.v_conv(v))")
    fwd.append('    q, k, v = (rearrange(t, "b t (h d) -> b t h d", h=self.n_heads) for t in (q, k, v))')
    if local:
        fwd.append("    q_local, k_local = q, k  # the softmax path attends with the plain projections")
    feature_map = {
        "identity": None,
        "elu1": "    q, k = F.elu(q) + 1, F.elu(k) + 1  # positive features",
        "silu": "    q, k = F.silu(q), F.silu(k)",
        "relu": "    q, k = F.relu(q), F.relu(k)",
    }[c["feature_map"]]
    if feature_map:
        fwd.append(feature_map)
    if c["qk_norm"] == "l2":
        fwd.append("    q, k = F.normalize(q, p=2, dim=-1), F.normalize(k, p=2, dim=-1)")
    if delta:
        if c["beta_range"] == "0_2":
            fwd.append("    beta = 2 * self.b_proj(x).sigmoid()  # [B, T, H] in (0, 2)")
        else:
            fwd.append("    beta = self.b_proj(x).sigmoid()  # [B, T, H] in (0, 1)")
    if decay == "fixed":
        fwd.append("    g = self.log_decay.expand(B, T, self.n_heads)  # [B, T, H] log-decay, constant")
    elif decay == "scalar":
        fwd.append("    g = -self.A_log.exp() * F.softplus(self.a_proj(x) + self.dt_bias)  # [B, T, H]")
    elif decay == "vector":
        fwd += [
            "    g = F.logsigmoid(self.gk_proj(x)) / 16  # [B, T, C]; / 16 keeps the decay slow, as in GLA",
            '    g = rearrange(g, "b t (h d) -> b t h d", h=self.n_heads)  # [B, T, H, D]',
        ]
    if kernel == "chunk_linear_attn":
        call = "chunk_linear_attn(q, k, v)" if decay == "none" else "chunk_linear_attn(q, k, v, g=g)"
    elif kernel == "chunk_delta_rule":
        call = "chunk_delta_rule(q, k, v, beta)"
    else:
        call = "chunk_gated_delta_rule(q, k, v, g, beta)"
    fwd.append(f"    o, _ = {call}  # [B, T, H, D]")
    if local:
        fwd += [
            "    o_local = sliding_window_attention(q_local, k_local, v, self.window)  # [B, T, H, D]",
            "    mix = torch.sigmoid(self.local_mix)[:, None]  # [H, 1]",
            "    o = (1 - mix) * o + mix * o_local",
        ]
    if out_norm:
        fwd.append("    o = self.o_norm(o)")
    if gate:
        fwd.append('    o = o * F.silu(rearrange(self.g_proj(x), "b t (h d) -> b t h d", h=self.n_heads))')
    fwd += [
        '    o = rearrange(o, "b t h d -> b t (h d)")',
        "    return self.o_proj(o)",
    ]

    lines = [
        "class Mixer(nn.Module):",
        f'    """Token mixer: {summary}. The module docstring lists every component."""',
        "",
        *("    " + line if line else "" for line in init),
        "",
        *("    " + line if line else "" for line in fwd),
    ]
    return "\n".join(lines)
