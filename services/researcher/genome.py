"""A token mixer described by its components, and the code that realises it.

The offline researcher does not write code token by token: it picks one value on each
axis of the fixed vocabulary (``services/runtime/vocabulary.py``) and :func:`render`
turns that choice into a complete candidate file that honours the architecture
contract (``class Mixer(torch.nn.Module)``, ``__init__(self, d_model, n_heads)``,
``forward`` mapping ``[B, T, d_model]`` to the same shape, causally; imports limited
to ``torch``, ``math``, ``einops`` and the project's ``kernels``).

A genome is a plain ``dict[str, str]`` over every axis.  Axes that do not apply to a
design (the beta range of linear attention, the dt range without a scalar decay) are
held at their default by :func:`canonical`, so two genomes that describe the same layer
are the same dict and the same :func:`signature`.

The renderer builds the layer in one fixed order — projections (q, k, v, decay, beta,
output gate, low-rank gate, path mix), convolutions, norms, output projection, the
linear layers' initialisation, then the decay parameters — which is the order of
flash-linear-attention's layers; the ``fused`` layout follows Mamba2's block instead
(one input projection, one convolution, decay parameters before the norm).  Because the
parameters are drawn in the papers' order with the papers' initialisations, every
baseline in ``services/engineer/baselines/`` is reproduced exactly, down to the
functional fingerprint (:data:`BASELINES`, tested).

Softmax attention is expressible (``update=softmax``) so that the genome covers every
baseline, but it is not a value the search proposes: its cost grows as T^2 and the
engineer's complexity probe rejects it (only the reference file itself is exempt).

The components are written into the file as a structured comment, so a parent's code
is enough to derive a child: :func:`components_of` reads them back.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import textwrap
from dataclasses import dataclass

import torch

from services.engineer.baselines import SEED_ARCHITECTURE, baseline_code
from services.researcher.novelty import load_mixer_class
from services.runtime.vocabulary import COMPONENTS, SCALES, parse_tag, tag

# Every axis at its DeltaNet value: the seed of the search, and what an axis that does not
# apply to a design is held at.
DEFAULTS: dict[str, str] = {
    "update": "delta",
    "decay": "none",
    "conv": "short",
    "conv_on": "qkv",
    "conv_bias": "none",
    "gate": "none",
    "qk_norm": "l2",
    "feature_map": "identity",
    "beta_range": "0_1",
    "out_norm": "rms",
    "path": "single",
    "position": "none",
    "normalizer": "none",
    "qk_heads": "per_head",
    "skip": "none",
    "input_scale": "none",
    "init": "xavier_small",
    "qkv_init": "inherit",
    "qk_scale": "inv_sqrt",
    "layout": "separate",
    "conv_size": "4",
    "heads": "1",
    "expand_k": "1",
    "expand_v": "1",
    "d_state": "64",
    "a_min": "1",
    "a_max": "16",
    "dt_min": "0.001",
    "dt_max": "0.1",
    "beta_bias": "0",
    "retention_exp": "5",
    "retention_step": "1",
    "gk_rank": "16",
    "gk_normalizer": "16",
    "window": "64",
    "householder": "1",
}
assert set(DEFAULTS) == set(COMPONENTS) and all(DEFAULTS[a] in COMPONENTS[a] for a in COMPONENTS)

SEED_COMPONENTS: dict[str, str] = dict(DEFAULTS)  # DeltaNet (Yang et al., 2024)

# The values of each baseline file; everything not named is at its default.  Tested: the
# rendering of each has the functional fingerprint of the file.
BASELINES: dict[str, dict[str, str]] = {
    "deltanet": dict(DEFAULTS),
    "gated_deltanet": {**DEFAULTS, "decay": "scalar", "gate": "output"},
    "gla": {**DEFAULTS, "update": "linear", "decay": "vector", "conv": "none", "gate": "output",
            "qk_norm": "none", "expand_k": "0.5"},
    "retnet": {**DEFAULTS, "update": "linear", "decay": "fixed", "conv": "none", "gate": "output",
               "qk_norm": "none", "position": "rotary"},
    "linear_attention": {**DEFAULTS, "update": "linear", "conv": "none", "qk_norm": "none", "feature_map": "elu1",
                         "out_norm": "none", "normalizer": "sum", "init": "xavier", "qk_scale": "one"},
    "mamba2": {**DEFAULTS, "update": "linear", "decay": "scalar", "conv_bias": "learned", "gate": "output",
               "qk_norm": "none", "out_norm": "rms_full", "qk_heads": "shared", "skip": "d", "input_scale": "dt",
               "init": "default", "qk_scale": "one", "layout": "fused"},
    "softmax_attention": {**DEFAULTS, "update": "softmax", "conv": "none", "qk_norm": "none", "out_norm": "none",
                          "position": "rotary", "init": "normal"},
}

# Values the search never proposes (it may still inherit them from a seed architecture):
# softmax fails the complexity probe.
NOT_SEARCHED: dict[str, frozenset[str]] = {"update": frozenset({"softmax"})}
# Axes the search never moves, only inherits: the layout changes how the weights are drawn,
# not what the layer computes, so moving it would buy a new fingerprint and no new design.
FIXED_AXES: frozenset[str] = frozenset({"layout"})
# The axes that set an initial value rather than a structure: the levers of "initialisation".
INIT_AXES: frozenset[str] = frozenset(
    {"init", "qkv_init", "beta_bias", "a_min", "a_max", "dt_min", "dt_max", "retention_exp", "retention_step",
     "gk_normalizer"}
)

# The axes that shape the state rather than what is computed on it: how wide keys and values
# are, how many heads share the width, whether heads share one group of keys, how many
# Householder steps a token writes.  Within the parameter budget, one of them grows only
# where another gives up parameters (``fit_budget``).
WIDTH_AXES: frozenset[str] = frozenset({"heads", "expand_k", "expand_v", "d_state", "qk_heads", "householder"})

# One sentence per choice value, in words a reader of the papers recognises; used in
# motivations and in the rendered file's docstring.  Scales are described by AXIS_NOTES.
COMPONENT_NOTES: dict[tuple[str, str], str] = {
    ("update", "linear"): "additive state writes, as in linear attention",
    ("update", "delta"): "error-correcting delta-rule writes that replace what a key already stores",
    ("update", "softmax"): "causal softmax attention over every earlier token (quadratic)",
    ("decay", "none"): "no forgetting: the state only changes by writes",
    ("decay", "fixed"): "RetNet's fixed per-head exponential decay",
    ("decay", "scalar"): "a data-dependent per-head decay gate (Mamba2, Gated DeltaNet)",
    ("decay", "vector"): "a data-dependent per-key-channel decay gate (GLA)",
    ("decay", "mixed"): "a learned per-head mixture of a fixed decay and a data-dependent one",
    ("conv", "none"): "no short convolution",
    ("conv", "short"): "a causal depthwise short convolution with SiLU",
    ("conv_on", "qkv"): "the short convolution on queries, keys and values",
    ("conv_on", "qk"): "the short convolution on queries and keys only",
    ("conv_on", "v"): "the short convolution on values only",
    ("conv_bias", "none"): "a convolution without bias",
    ("conv_bias", "learned"): "a convolution with a learned bias (Mamba2)",
    ("gate", "none"): "no output gate",
    ("gate", "output"): "a SiLU output gate computed from the layer input",
    ("gate", "sigmoid"): "a sigmoid output gate computed from the layer input (Gated Attention)",
    ("qk_norm", "none"): "unnormalised queries and keys",
    ("qk_norm", "l2"): "L2-normalised queries and keys",
    ("feature_map", "identity"): "no feature map on queries and keys",
    ("feature_map", "elu1"): "the ELU+1 feature map on queries and keys",
    ("feature_map", "silu"): "the SiLU feature map on queries and keys",
    ("feature_map", "relu"): "the ReLU feature map on queries and keys",
    ("beta_range", "0_1"): "a write strength beta in (0, 1)",
    ("beta_range", "0_2"): "a write strength beta in (0, 2), admitting negative eigenvalues",
    ("out_norm", "none"): "no output normalisation",
    ("out_norm", "rms"): "a per-head RMSNorm on the output, before the gate",
    ("out_norm", "rms_full"): "an RMSNorm over the whole width of the gated output (Mamba2)",
    ("path", "single"): "a single recurrent path",
    ("path", "local_global"): "a sliding-window softmax path beside the recurrent one, mixed by a learned "
                              "weight per head",
    ("path", "local_global_gated"): "a sliding-window softmax path beside the recurrent one, mixed per token and head "
                                    "by a gate computed from the input",
    ("position", "none"): "no positional rotation",
    ("position", "rotary"): "rotary positions on queries and keys",
    ("normalizer", "none"): "no normaliser",
    ("normalizer", "sum"): "linear attention's normaliser, the running sum of the keys",
    ("qk_heads", "per_head"): "queries and keys per head",
    ("qk_heads", "shared"): "one group of queries and keys shared by all heads (Mamba2's B and C)",
    ("skip", "none"): "no skip connection inside the mixer",
    ("skip", "d"): "Mamba2's skip connection D * x",
    ("input_scale", "none"): "values written as they are",
    ("input_scale", "dt"): "values scaled by the decay's step dt (Mamba2's discretisation)",
    ("init", "default"): "PyTorch's default initialisation of the linear layers",
    ("init", "xavier"): "Xavier-uniform linear layers",
    ("init", "xavier_small"): "Xavier-uniform linear layers with gain 2^-2.5 (flash-linear-attention)",
    ("init", "normal"): "linear layers drawn from N(0, 0.02) (GPT-2)",
    ("qkv_init", "inherit"): "the query, key and value projections initialised as the other linear layers",
    ("qkv_init", "xavier"): "the query, key and value projections re-drawn Xavier-uniform at gain 1",
    ("qk_scale", "inv_sqrt"): "q.k scaled by 1/sqrt(key dim)",
    ("qk_scale", "one"): "q.k unscaled",
    ("layout", "separate"): "one projection per role",
    ("layout", "fused"): "one fused input projection and one convolution (Mamba2's block)",
}
AXIS_NOTES: dict[str, str] = {
    "conv_size": "a short-convolution kernel of {} tokens",
    "heads": "{} times the profile's heads",
    "expand_k": "keys {} times the model width",
    "expand_v": "values {} times the model width",
    "d_state": "a shared key state of {} channels",
    "a_min": "decay rates A drawn from at least {}",
    "a_max": "decay rates A drawn up to {}",
    "dt_min": "decay steps dt drawn log-uniformly from {}",
    "dt_max": "decay steps dt drawn log-uniformly up to {}",
    "beta_bias": "a write-strength logit starting at {}",
    "retention_exp": "a fastest fixed decay of 1 - 2^-{}",
    "retention_step": "fixed-decay exponents {} apart from head to head",
    "gk_rank": "a rank-{} per-channel gate",
    "gk_normalizer": "a per-channel gate logit divided by {}",
    "window": "a sliding window of {} tokens",
    "householder": "{} delta-rule (Householder) steps per token",
}


def note(axis: str, value: str) -> str:
    """One sentence for ``axis=value``."""
    if axis in SCALES:
        return AXIS_NOTES[axis].format(value)
    return COMPONENT_NOTES[(axis, value)]


HEADER_PREFIX = "# asi-arch components:"


def relevant_axes(c: dict[str, str]) -> set[str]:
    """The axes that change the layer under ``c``'s structure; the rest are held at their default."""
    update, decay = c["update"], c["decay"]
    axes = set(COMPONENTS)
    if update != "delta":
        axes -= {"beta_range", "beta_bias", "householder"}
    if update != "linear":
        axes -= {"normalizer"}
    if update == "softmax":
        axes -= {"qk_scale"}
    if decay not in ("scalar", "mixed"):
        axes -= {"a_min", "a_max", "dt_min", "dt_max", "input_scale"}
    if decay not in ("fixed", "mixed"):
        axes -= {"retention_exp", "retention_step"}
    if decay != "vector":
        axes -= {"gk_rank", "gk_normalizer"}
    if c["conv"] == "none":
        axes -= {"conv_on", "conv_bias", "conv_size"}
    if c["path"] == "single":
        axes -= {"window"}
    if c["layout"] == "fused" or c["init"] == "xavier":
        axes -= {"qkv_init"}  # no separate q, k, v projections; or already drawn so
    axes -= {"d_state"} if c["qk_heads"] == "per_head" else {"expand_k"}
    return axes


def canonical(components: dict[str, str]) -> dict[str, str]:
    """``components`` with every axis that does not apply held at its default, in vocabulary order."""
    axes = relevant_axes(components)
    return {axis: components[axis] if axis in axes else DEFAULTS[axis] for axis in COMPONENTS}


@dataclass(frozen=True)
class Rule:
    """``if_tag`` forbids ``forbidden_tag``, for the stated reason; each side says where to move instead."""

    if_tag: str
    forbidden_tag: str
    why: str
    instead_of_forbidden: str  # the value the forbidden axis moves to when ``if_tag`` is kept
    instead_of_if: str  # the value the ``if_tag`` axis moves to when the other is kept


RULES: tuple[Rule, ...] = (
    Rule("update=delta", "qk_norm=none", "the delta rule is only stable with unit-norm keys", "l2", "linear"),
    Rule("update=delta", "decay=vector", "the gated delta rule takes one decay per head, not per channel",
         "scalar", "linear"),
    *(Rule("update=softmax", f"decay={d}", "softmax attention keeps no state to decay", "none", "linear")
      for d in ("fixed", "scalar", "vector", "mixed")),
    *(Rule("normalizer=sum", f"feature_map={f}", "the normaliser needs positive features (ELU+1)", "elu1", "none")
      for f in ("identity", "silu", "relu")),
    Rule("decay=vector", "qk_heads=shared", "a per-channel decay needs per-head keys", "per_head", "scalar"),
    *(Rule(f"householder={n}", forbidden, why, instead, "1")
      for n in ("2", "3")
      for forbidden, why, instead in (
          ("qk_heads=shared", "each Householder step has its own keys", "per_head"),
          ("path=local_global", "the local path reads one key per token", "single"),
          ("path=local_global_gated", "the local path reads one key per token", "single"),
          ("skip=d", "the skip reads one value per token", "none"),
          ("input_scale=dt", "dt scales one value per token", "none"),
      )),
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
    tags = {tag(axis, value) for axis, value in canonical(components).items()}
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


def make_valid(components: dict[str, str], keep: str | set[str]) -> dict[str, str]:
    """The nearest valid canonical design that keeps the values on the axes in ``keep``.

    Each violated rule is resolved by moving whichever of its two axes is not kept to the
    value the rule names (the delta rule gets L2 keys and a per-head decay, DeltaProduct
    drops the local path...).  When both are kept, the forbidden side moves.
    """
    kept = {keep} if isinstance(keep, str) else set(keep)
    fixed = canonical(components)
    # Each move goes to a value no rule forbids given the other side, so this settles.
    for _ in range(len(RULES) + 1):
        tags = {tag(axis, value) for axis, value in fixed.items()}
        rule = next((r for r in RULES if r.if_tag in tags and r.forbidden_tag in tags), None)
        if rule is None:
            break
        if_axis, _ = parse_tag(rule.if_tag)
        forbidden_axis, _ = parse_tag(rule.forbidden_tag)
        if forbidden_axis in kept and if_axis not in kept:
            fixed[if_axis] = rule.instead_of_if
        else:
            fixed[forbidden_axis] = rule.instead_of_forbidden
        fixed = canonical(fixed)
    validate(fixed)
    return fixed


def signature(components: dict[str, str]) -> str:
    """The canonical one-line form of a design, in vocabulary order: equal designs, equal strings."""
    c = canonical(components)
    return " ".join(tag(axis, c[axis]) for axis in COMPONENTS)


def components_of(code: str) -> dict[str, str]:
    """Read the components back from a file written by :func:`render`, or of a baseline file.

    A baseline file is recognised by its exact text (never by running it), so any
    ``--seed-arch`` file that is a baseline can be evolved too.
    """
    match = re.search(rf"^{re.escape(HEADER_PREFIX)}(.*)$", code, flags=re.MULTILINE)
    if match is None:
        name = _baseline_named_by_text(code)
        if name is None:
            raise ValueError(f"no {HEADER_PREFIX!r} line: this code was not rendered from a genome")
        return canonical(BASELINES[name])
    components = {**DEFAULTS, **dict(parse_tag(text) for text in match.group(1).split())}
    validate(components)
    return canonical(components)


def _baseline_named_by_text(code: str) -> str | None:
    return next((name for name in BASELINES if baseline_code(name) == code), None)


def name_of(components: dict[str, str]) -> str:
    """A short descriptive name: the update rule, then every choice that is not DeltaNet's."""
    c = canonical(components)
    parts = [{"delta": "delta", "linear": "linear", "softmax": "softmax"}[c["update"]]]
    if c["householder"] != "1":
        parts[0] = f"deltaproduct{c['householder']}"
    for axis in COMPONENTS:
        if axis in ("update", "householder") or c[axis] == DEFAULTS[axis]:
            continue
        parts.append(f"{axis.replace('_', '')}-{c[axis].replace('_', '').replace('.', 'p')}")
    return "-".join(parts)


# -- the design space ------------------------------------------------------------------------

# Axes that rules or relevance depend on: enumerated.  Every other axis is free: its values
# multiply the count wherever it is relevant.
_STRUCTURAL = ("update", "decay", "conv", "qk_norm", "feature_map", "path", "normalizer", "qk_heads",
               "skip", "input_scale", "householder", "init", "layout")


def design_space_size(*, searched_only: bool = False) -> int:
    """How many distinct valid designs the genome expresses (``searched_only``: what the
    offline search can reach from the seed: no :data:`NOT_SEARCHED` values, :data:`FIXED_AXES`
    at their defaults).  The parameter budget is not counted: it depends on the profile's width."""
    def values(axis: str) -> tuple[str, ...]:
        if searched_only and axis in FIXED_AXES:
            return (DEFAULTS[axis],)
        banned = NOT_SEARCHED.get(axis, frozenset()) if searched_only else frozenset()
        return tuple(v for v in COMPONENTS[axis] if v not in banned)

    seen: set[tuple[str, ...]] = set()
    total = 0
    for choice in itertools.product(*(values(axis) for axis in _STRUCTURAL)):
        c = canonical({**DEFAULTS, **dict(zip(_STRUCTURAL, choice, strict=True))})
        key = tuple(c[axis] for axis in _STRUCTURAL)
        if key in seen or problems(c):
            continue
        seen.add(key)
        axes = relevant_axes(c)
        total += math.prod(len(values(axis)) for axis in COMPONENTS if axis not in _STRUCTURAL and axis in axes)
    return total


# -- the parameter budget ------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _params_of_code(code: str, d_model: int, n_heads: int) -> int:
    # Shapes only: on the meta device nothing is allocated or drawn.
    with torch.device("meta"):
        mixer = load_mixer_class(code)(d_model, n_heads)
    return sum(p.numel() for p in mixer.parameters())


def param_ratio(components: dict[str, str], d_model: int, n_heads: int) -> float:
    """Parameters of the design over DeltaNet's at this width: what the engineer's budget probe judges."""
    reference = _params_of_code(baseline_code(SEED_ARCHITECTURE), d_model, n_heads)
    return _params_of_code(render(components, "budget", ""), d_model, n_heads) / reference


# -- rendering -------------------------------------------------------------------------------------


def render(components: dict[str, str], name: str, motivation: str) -> str:
    """A complete, readable candidate source file for ``components``."""
    validate(components)
    c = canonical(components)
    kernel = _kernel(c)
    needs_math = c["decay"] in ("scalar", "mixed") or c["path"] != "single"

    imports = ["import math", ""] if needs_math else []
    imports += ["import torch", "import torch.nn.functional as F", "from einops import rearrange",
                "from torch import nn"]
    ops = sorted({kernel} - {""} | ({"causal_conv1d"} if c["conv"] == "short" else set()))
    if ops:
        imports += ["", f"from kernels import {', '.join(ops)}"]
    header = (_docstring(name, motivation, c) + "\n\n# Axes not named on the next line are at DeltaNet's values.\n"
              + f"{HEADER_PREFIX} {_header_tags(c)}".rstrip() + "\n\n" + "\n".join(imports))
    sections = [header]
    if c["conv"] == "short":
        sections.append(_SHORT_CONV)
    if c["position"] == "rotary":
        sections.append(_ROTARY)
    if c["path"] != "single":
        sections.append(_SLIDING_WINDOW)
    sections.append(_mixer_class(c, kernel))
    return "\n\n\n".join(section.strip("\n") for section in sections) + "\n"


def _header_tags(c: dict[str, str]) -> str:
    # Only what differs from the defaults: the line stays readable and still round-trips.
    return " ".join(tag(axis, c[axis]) for axis in COMPONENTS if c[axis] != DEFAULTS[axis])


def _kernel(c: dict[str, str]) -> str:
    if c["update"] == "softmax":
        return ""
    if c["update"] == "linear":
        return "chunk_linear_attn"
    return "chunk_delta_rule" if c["decay"] == "none" else "chunk_gated_delta_rule"


def _docstring(name: str, motivation: str, c: dict[str, str]) -> str:
    # The motivation is free text: keep it from closing the docstring or escaping.
    safe = motivation.replace("\\", "/").replace('"""', "'''").strip()
    paragraphs = [textwrap.fill(p, width=88) for p in safe.split("\n\n") if p.strip()]
    axes = relevant_axes(c)
    design = [f"- {axis}={c[axis]}: {note(axis, c[axis])}" for axis in COMPONENTS if axis in axes]
    body = "\n\n".join([name, *paragraphs, "Design:\n" + "\n".join(design)])
    return f'"""{body}\n"""'


_SHORT_CONV = '''
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
'''

_ROTARY = '''
def rotary(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs of ``x`` [B, T, H, D] by position-dependent angles."""
    B, T, H, D = x.shape
    inv_freq = base ** (-torch.arange(0, D, 2, dtype=torch.float32, device=x.device) / D)
    angles = torch.arange(T, dtype=torch.float32, device=x.device)[:, None] * inv_freq  # [T, D/2]
    cos, sin = angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)
'''

_SLIDING_WINDOW = '''
def sliding_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Causal softmax attention over the last `window` tokens (the current one included).

    q, k: [B, T, H, K], v: [B, T, H, V]. Time is cut into blocks of `window` tokens; each block
    attends to itself and to the block before it, so the cost is O(T * window), linear in T.
    """
    B, T, H, K = q.shape
    n_blocks = math.ceil(T / window)
    pad = n_blocks * window - T  # padding at the end is never attended: it lies in the future
    q, k, v = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (q, k, v))
    q, k, v = (rearrange(t, "b (n w) h d -> b h n w d", w=window) for t in (q, k, v))
    # Keys and values of the previous block beside the block's own: [B, H, n, 2 * window, D].
    k = torch.cat([F.pad(k, (0, 0, 0, 0, 1, 0))[:, :, :-1], k], dim=3)
    v = torch.cat([F.pad(v, (0, 0, 0, 0, 1, 0))[:, :, :-1], v], dim=3)
    scores = torch.einsum("bhnid,bhnjd->bhnij", q, k) / math.sqrt(K)  # [B, H, n, window, 2 * window]
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


def _number(text: str) -> str:
    """A float literal for a scale value (``16`` -> ``16.0``), as the papers' code writes them."""
    return repr(float(text))


def _mixer_class(c: dict[str, str], kernel: str) -> str:
    delta, linear, softmax = (c["update"] == u for u in ("delta", "linear", "softmax"))
    decay = c["decay"]
    scalar_gate = decay in ("scalar", "mixed")
    fixed_decay = decay in ("fixed", "mixed")
    vector = decay == "vector"
    conv = c["conv"] == "short"
    shared = c["qk_heads"] == "shared"
    fused = c["layout"] == "fused"
    gate = c["gate"] != "none"
    local = c["path"] != "single"
    gated_mix = c["path"] == "local_global_gated"
    steps = int(c["householder"])
    skip = c["skip"] == "d"
    dt_input = c["input_scale"] == "dt"
    targets = {"qkv": "qkv", "qk": "qk", "v": "v"}[c["conv_on"]] if conv else ""

    init = ["def __init__(self, d_model: int, n_heads: int):", "    super().__init__()"]
    heads = {"0.5": "max(1, n_heads // 2)", "1": "n_heads", "2": "2 * n_heads"}[c["heads"]]
    init.append(f"    self.n_heads = {heads}")
    if shared:
        init.append(f"    self.key_dim = {c['d_state']}  # one group of keys and queries shared by all heads")
    else:
        init.append("    self.key_dim = d_model" if c["expand_k"] == "1" else
                    f"    self.key_dim = int(d_model * {c['expand_k']})")
    init.append("    self.value_dim = d_model" if c["expand_v"] == "1" else
                f"    self.value_dim = int(d_model * {c['expand_v']})")
    divisible = "self.value_dim % self.n_heads == 0" + ("" if shared else " and self.key_dim % self.n_heads == 0")
    init.append(f'    assert {divisible}, "widths must split evenly into heads"')
    if steps > 1:
        init.append(f"    self.steps = {steps}  # delta-rule (Householder) steps per token, each with own k, v, beta")
    n = "self.steps * " if steps > 1 else ""

    # Projections, in the order the papers' layers create them.
    roles: list[tuple[str, str]] = []  # (name in forward, width expression)
    if fused:
        if gate:
            roles.append(("z", "self.value_dim"))
        roles += [("v", f"{n}self.value_dim"), ("k", f"{n}self.key_dim"), ("q", "self.key_dim")]
        if scalar_gate:
            roles.append(("a", "self.n_heads"))
        if delta:
            roles.append(("b", f"{n}self.n_heads"))
        if gated_mix:
            roles.append(("m", "self.n_heads"))
        init += [
            "    # One input projection for every role, split in forward (Mamba2's layout).",
            f"    self.in_sizes = [{', '.join(width for _, width in roles)}]  # {', '.join(r for r, _ in roles)}",
            "    self.in_proj = nn.Linear(d_model, sum(self.in_sizes), bias=False)",
        ]
    else:
        init += [
            "    self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)",
            f"    self.k_proj = nn.Linear(d_model, {n}self.key_dim, bias=False)",
            f"    self.v_proj = nn.Linear(d_model, {n}self.value_dim, bias=False)",
        ]
        if scalar_gate:
            init.append("    self.a_proj = nn.Linear(d_model, self.n_heads, bias=False)  # the decay's step, per head")
        if delta:
            init.append(f"    self.b_proj = nn.Linear(d_model, {n}self.n_heads, bias=False)  # write strength")
        if gate:
            init.append("    self.g_proj = nn.Linear(d_model, self.value_dim, bias=False)")
    if vector:
        rank = c["gk_rank"]
        init += [
            f"    # GLA's low-rank gate: one decay per key channel, from a rank-{rank} projection.",
            f"    self.gk_proj = nn.Sequential(nn.Linear(d_model, {rank}, bias=False), "
            f"nn.Linear({rank}, self.key_dim, bias=True))",
        ]
    if gated_mix and not fused:
        init.append("    self.mix_proj = nn.Linear(d_model, self.n_heads, bias=False)  # local-vs-global, per token")

    widths = {"q": "self.key_dim", "k": f"{n}self.key_dim", "v": f"{n}self.value_dim"}
    size, bias = c["conv_size"], ", bias=True" if c["conv_bias"] == "learned" else ""
    if conv and fused:
        order = [t for t in "vkq" if t in targets]
        channels = " + ".join(widths[t] for t in order)
        init.append(f"    self.conv = ShortConv({channels}, {size}{bias})  # over {', '.join(order)}")
    elif conv:
        init += [f"    self.{t}_conv = ShortConv({widths[t]}, {size}{bias})" for t in "qkv" if t in targets]

    gate_params = []
    if fixed_decay:
        e, s = _number(c["retention_exp"]), _number(c["retention_step"])
        gate_params += [
            f"    # Fixed decays gamma_h = 1 - 2^-({e} + {s} h): from fast- to slow-forgetting heads (RetNet: 5, 1).",
            f"    gamma = 1 - 2.0 ** (-{e} - {s} * torch.arange(self.n_heads, dtype=torch.float32))",
            '    self.register_buffer("log_decay", gamma.log(), persistent=False)  # [H]',
        ]
    if scalar_gate:
        a_lo, a_hi, dt_lo, dt_hi = (_number(c[a]) for a in ("a_min", "a_max", "dt_min", "dt_max"))
        gate_params += [
            "    # The Mamba2 / Gated DeltaNet gate. Its initialisation matters: a zero-initialised gate",
            "    # decays by about 0.5 per token and erases the memory within a few tokens.",
            f"    self.A_log = nn.Parameter(torch.empty(self.n_heads).uniform_({a_lo}, {a_hi}).log())",
            f"    dt = torch.exp(torch.empty(self.n_heads).uniform_(math.log({dt_lo}), math.log({dt_hi})))"
            ".clamp(min=1e-4)",
            "    self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) == dt",
        ]
    if decay == "mixed":
        gate_params.append("    self.decay_mix = nn.Parameter(torch.zeros(self.n_heads))  # sigmoid(0): an even mix")
    if skip:
        gate_params.append("    self.D = nn.Parameter(torch.ones(self.n_heads))")
    if delta and c["beta_bias"] != "0":
        gate_params.append(
            f"    self.b_bias = nn.Parameter(torch.full(({n}self.n_heads,), {_number(c['beta_bias'])}))"
            f"  # beta starts near sigmoid({c['beta_bias']})"
        )
    if c["path"] == "local_global":
        gate_params.append("    self.local_mix = nn.Parameter(torch.zeros(self.n_heads))  # sigmoid(0): an even mix")

    if fused:
        init += gate_params
    if c["out_norm"] == "rms":
        init.append("    self.o_norm = nn.RMSNorm(self.value_dim // self.n_heads, eps=1e-5)")
    elif c["out_norm"] == "rms_full":
        init.append("    self.o_norm = nn.RMSNorm(self.value_dim, eps=1e-5)")
    init.append("    self.o_proj = nn.Linear(self.value_dim, d_model, bias=False)")
    reinit = {
        "default": [],
        "xavier": ["nn.init.xavier_uniform_(module.weight, gain=1.0)"],
        "xavier_small": ["nn.init.xavier_uniform_(module.weight, gain=2**-2.5)  # flash-linear-attention's init"],
        "normal": ["nn.init.normal_(module.weight, std=0.02)"],
    }[c["init"]]
    if reinit:
        init += [
            "    for module in self.modules():",
            "        if isinstance(module, nn.Linear):",
            *(f"            {line}" for line in reinit),
            "            if module.bias is not None:",
            "                nn.init.zeros_(module.bias)",
        ]
    if c["qkv_init"] == "xavier":
        init += [
            "    for proj in (self.q_proj, self.k_proj, self.v_proj):",
            "        nn.init.xavier_uniform_(proj.weight, gain=1.0)  # the rest of the layer keeps its scale",
        ]
    if not fused:
        init += gate_params

    # -- forward -------------------------------------------------------------------------------
    fwd = ["def forward(self, x: torch.Tensor) -> torch.Tensor:", "    B, T, C = x.shape"]
    if fused:
        names = {"z": "z", "v": "v", "k": "k", "q": "q", "a": "a", "b": "b_logit", "m": "m"}
        fwd.append(f"    {', '.join(names[r] for r, _ in roles)} = torch.split(self.in_proj(x), self.in_sizes, dim=-1)")
    else:
        fwd.append("    q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)")
    if conv and fused:
        order = [t for t in "vkq" if t in targets]
        if len(order) == 1:
            fwd.append(f"    {order[0]} = self.conv({order[0]})")
        else:
            joined = ", ".join(order)
            fwd.append(f"    {joined} = torch.split(self.conv(torch.cat([{joined}], dim=-1)), "
                       f"[{', '.join(f'{t}.shape[-1]' for t in order)}], dim=-1)")
    elif conv:
        fwd.append("    " + ", ".join(targets) + " = " + ", ".join(f"self.{t}_conv({t})" for t in targets))
    heads_kv = "self.steps * self.n_heads" if steps > 1 else "self.n_heads"
    if shared:
        fwd += [
            "    q = q[:, :, None, :].expand(B, T, self.n_heads, self.key_dim)  # [B, T, H, K], one group",
            "    k = k[:, :, None, :].expand(B, T, self.n_heads, self.key_dim)",
        ]
    else:
        fwd += [
            '    q = rearrange(q, "b t (h d) -> b t h d", h=self.n_heads)',
            f'    k = rearrange(k, "b t (h d) -> b t h d", h={heads_kv})',
        ]
    fwd.append(f'    v = rearrange(v, "b t (h d) -> b t h d", h={heads_kv})')
    if local:
        fwd.append("    q_local, k_local = q, k  # the softmax path attends with the plain projections")
    if skip:
        fwd.append("    u = v  # the skip connection's input")
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
    if c["position"] == "rotary":
        fwd.append("    q, k = rotary(q), rotary(k)")
    if delta:
        logit = "b_logit" if fused else "self.b_proj(x)"
        if c["beta_bias"] != "0":
            logit = f"({logit} + self.b_bias)"
        if c["beta_range"] == "0_2":
            fwd.append(f"    beta = 2 * {logit}.sigmoid()  # [B, T, H] in (0, 2)")
        else:
            fwd.append(f"    beta = {logit}.sigmoid()  # [B, T, H] in (0, 1)")
    if scalar_gate:
        a = "a" if fused else "self.a_proj(x)"
        fwd.append(f"    dt = F.softplus({a} + self.dt_bias)  # [B, T, H] step of the decay")
    if decay == "fixed":
        fwd.append("    g = self.log_decay.expand(B, T, self.n_heads)  # [B, T, H] log-decay, constant")
    elif decay == "scalar":
        fwd.append("    g = -self.A_log.exp() * dt  # [B, T, H] log-decay, <= 0")
    elif decay == "mixed":
        fwd += [
            "    mix = torch.sigmoid(self.decay_mix)  # [H]: weight of the fixed decay per head",
            "    g = mix * self.log_decay + (1 - mix) * (-self.A_log.exp() * dt)  # [B, T, H]",
        ]
    elif vector:
        fwd += [
            f"    g = F.logsigmoid(self.gk_proj(x)) / {_number(c['gk_normalizer'])}  # the normaliser keeps decay slow",
            '    g = rearrange(g, "b t (h d) -> b t h d", h=self.n_heads)  # [B, T, H, K] log-decay per channel',
        ]
    if dt_input:
        fwd.append("    v = v * dt[..., None]  # discretised input")
    if steps > 1:
        fwd += [
            "    # DeltaProduct: each token's steps run as consecutive positions of a sequence `steps` times",
            "    # longer; the state decays once per token and each token's output is read after its last step.",
            '    k = rearrange(k, "b t (n h) d -> b (t n) h d", n=self.steps)',
            '    v = rearrange(v, "b t (n h) d -> b (t n) h d", n=self.steps)',
            '    beta = rearrange(beta, "b t (n h) -> b (t n) h", n=self.steps)',
            "    q = q.repeat_interleave(self.steps, dim=1)",
        ]
        if decay != "none":
            fwd.append('    g = rearrange(F.pad(g[..., None], (0, self.steps - 1)), "b t h n -> b (t n) h")')
    scale = ", scale=1.0" if c["qk_scale"] == "one" and not softmax else ""
    if softmax:
        fwd += [
            "    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), "
            "is_causal=True)",
            "    o = o.transpose(1, 2)  # [B, T, H, V]",
        ]
    elif linear and c["normalizer"] == "sum":
        g_arg = "" if decay == "none" else ", g=g"
        fwd += [
            "    v_and_one = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # last channel accumulates phi(k)",
            f"    o, _ = chunk_linear_attn(q, k, v_and_one{g_arg}{scale})",
            "    o = o[..., :-1] / (o[..., -1:] + 1e-6)",
        ]
    elif linear:
        g_arg = "" if decay == "none" else ", g=g"
        fwd.append(f"    o, _ = chunk_linear_attn(q, k, v{g_arg}{scale})  # [B, T, H, V]")
    elif decay == "none":
        fwd.append(f"    o, _ = chunk_delta_rule(q, k, v, beta{scale})  # [B, T, H, V]")
    else:
        fwd.append(f"    o, _ = chunk_gated_delta_rule(q, k, v, g, beta{scale})  # [B, T, H, V]")
    if steps > 1:
        fwd.append("    o = o[:, self.steps - 1 :: self.steps]  # [B, T, H, V]")
    if local:
        fwd.append(f"    o_local = sliding_window_attention(q_local, k_local, v, {c['window']})  # [B, T, H, V]")
        if gated_mix:
            m = "m" if fused else "self.mix_proj(x)"
            fwd.append(f"    mix = torch.sigmoid({m})[..., None]  # [B, T, H, 1]")
        else:
            fwd.append("    mix = torch.sigmoid(self.local_mix)[:, None]  # [H, 1]")
        fwd.append("    o = (1 - mix) * o + mix * o_local")
    if skip:
        fwd.append("    o = o + self.D[:, None] * u")
    g_out = "z" if fused else "self.g_proj(x)"
    if c["out_norm"] == "rms":
        fwd.append("    o = self.o_norm(o)")
    fwd.append('    o = rearrange(o, "b t h d -> b t (h d)")')
    if gate:
        fwd.append(f"    o = o * F.silu({g_out})" if c["gate"] == "output" else f"    o = o * torch.sigmoid({g_out})")
    if c["out_norm"] == "rms_full":
        fwd.append("    o = self.o_norm(o)")
    fwd.append("    return self.o_proj(o)")

    summary = {"linear": "linear attention", "delta": "delta rule", "softmax": "softmax attention"}[c["update"]]
    if steps > 1:
        summary = f"delta rule with {steps} Householder steps per token"
    if decay != "none":
        summary += f", {decay} decay"
    lines = [
        "class Mixer(nn.Module):",
        f'    """Token mixer: {summary}. The module docstring lists every component."""',
        "",
        *("    " + line for line in init),
        "",
        *("    " + line for line in fwd),
    ]
    return "\n".join(lines)


# Width scales, in the order a design over or under the parameter budget gives them up or takes
# them on: keys first (values carry what is recalled), then values, the shared state, the gate rank.
_BUDGET_ORDER = ("expand_k", "expand_v", "d_state", "gk_rank", "householder")
PARAM_TOLERANCE = 0.5  # the engineer's: within +-50% of DeltaNet (services/engineer/probes.py)


def fit_budget(components: dict[str, str], keep: set[str], d_model: int, n_heads: int) -> dict[str, str] | None:
    """``components`` moved step by step along the width scales not in ``keep`` until its
    parameters are within the budget at this width; None when no such move gets there."""
    c = canonical(components)
    for _ in range(sum(len(COMPONENTS[axis]) for axis in _BUDGET_ORDER)):
        ratio = param_ratio(c, d_model, n_heads)
        if abs(ratio - 1) <= PARAM_TOLERANCE:
            return c
        direction = -1 if ratio > 1 else 1
        movable = [
            axis for axis in _BUDGET_ORDER
            if axis not in keep and axis in relevant_axes(c)
            and 0 <= COMPONENTS[axis].index(c[axis]) + direction < len(COMPONENTS[axis])
            and (direction < 0 or axis != "householder")  # never add steps to make up a deficit
        ]
        if not movable:
            return None
        axis = movable[0]
        c = make_valid({**c, axis: COMPONENTS[axis][COMPONENTS[axis].index(c[axis]) + direction]}, keep=keep | {axis})
    return None
