"""The fixed vocabulary of component tags.

Cognition entries are tagged with it and the researcher acts on it: a tag
``axis=value`` names one design choice of a token mixer.  Keeping the axes in one
place is what lets a retrieved paper become a concrete code change.

Two kinds of axis share the one tag form: *choices* (an unordered set of alternatives,
``decay=scalar``) and *scales* (numeric values in increasing order, ``dt_max=0.1``), on
which the offline mind moves a value by one or two steps rather than jumping anywhere.
"""

COMPONENTS: dict[str, tuple[str, ...]] = {
    # How the state is written: additive (linear attention), error-correcting (delta rule),
    # or no state at all (softmax attention, the quadratic reference).
    "update": ("linear", "delta", "softmax"),
    # How the state forgets: not at all, a fixed rate (RetNet), a data-dependent scalar
    # per head (Mamba2, Gated DeltaNet), a data-dependent vector per key channel (GLA), or
    # a learned per-head mixture of the fixed and the data-dependent scalar decay.
    "decay": ("none", "fixed", "scalar", "vector", "mixed"),
    # A short causal depthwise convolution (then SiLU) before the mixer.
    "conv": ("none", "short"),
    # Which projections the short convolution runs over.
    "conv_on": ("qkv", "qk", "v"),
    # Whether the short convolution has a bias (Mamba2's does, flash-linear-attention's not).
    "conv_bias": ("none", "learned"),
    # A data-dependent gate on the mixer output: SiLU (Gated DeltaNet, Mamba2, GLA, RetNet), or
    # sigmoid, the gating paper's best (Qiu et al., 2025; services/cognition/corpus/gated-attention-2025.json).
    "gate": ("none", "output", "sigmoid"),
    # Normalisation of queries and keys before the recurrence.
    "qk_norm": ("none", "l2"),
    # Feature map applied to queries and keys.
    "feature_map": ("identity", "elu1", "silu", "relu"),
    # Range of the delta-rule write strength; (0, 2) admits negative eigenvalues.
    "beta_range": ("0_1", "0_2"),
    # Output normalisation: none, an RMSNorm per head (then the gate), or an RMSNorm over
    # the whole width of the gated output (Mamba2's norm(y * silu(z))).
    "out_norm": ("none", "rms", "rms_full"),
    # A single recurrent path, or a causal sliding-window softmax path beside it, fused by a
    # learned per-head weight or by a data-dependent per-token, per-head weight.
    "path": ("single", "local_global", "local_global_gated"),
    # Positions: none beyond the recurrence's order, or rotary q and k (RetNet, Transformer++).
    "position": ("none", "rotary"),
    # Linear attention's normaliser: none, or the running sum of keys (Katharopoulos et al.).
    "normalizer": ("none", "sum"),
    # Queries and keys per head, or one group shared by all heads (Mamba2's B and C).
    "qk_heads": ("per_head", "shared"),
    # Mamba2's skip connection y + D * x.
    "skip": ("none", "d"),
    # Mamba2's discretisation: the value scaled by the step dt of the scalar decay.
    "input_scale": ("none", "dt"),
    # Initialisation of the linear layers.
    "init": ("default", "xavier", "xavier_small", "normal"),
    # The query, key and value projections alone re-drawn Xavier-uniform at gain 1 after the
    # layer-wide initialisation: the rest of the layer keeps its (small) initial scale.
    "qkv_init": ("inherit", "xavier"),
    # Scale of q.k in the recurrence: 1/sqrt(key dim), or 1 (linear attention, Mamba2).
    "qk_scale": ("inv_sqrt", "one"),
    # How the projections are laid out in code: one matrix per role (flash-linear-attention's
    # layers) or one fused input projection and one convolution (Mamba2's block).
    "layout": ("separate", "fused"),
    # -- scales: numeric values in increasing order ---------------------------------------
    # Short convolution's kernel size.
    "conv_size": ("2", "3", "4", "6", "8"),
    # Heads as a multiple of the profile's head count.
    "heads": ("0.5", "1", "2"),
    # Key width as a multiple of d_model (per-head keys).
    "expand_k": ("0.25", "0.5", "1", "2"),
    # Value width as a multiple of d_model.
    "expand_v": ("0.5", "1", "1.5", "2"),
    # State size of shared keys (Mamba2's d_state).
    "d_state": ("16", "32", "64", "128"),
    # Initial range of the scalar decay's rate A ~ U(a_min, a_max) (Mamba2: 1..16).
    "a_min": ("0.25", "0.5", "1", "2", "4"),
    "a_max": ("4", "8", "16", "32", "64"),
    # Initial range of the scalar decay's step dt, log-uniform (Mamba2: 0.001..0.1).
    "dt_min": ("0.0001", "0.0003", "0.001", "0.003", "0.01"),
    "dt_max": ("0.03", "0.1", "0.3", "1"),
    # Initial bias of the write strength's logit (0: beta starts near 0.5).
    "beta_bias": ("-2", "-1", "0", "1", "2"),
    # Fixed decay gamma_h = 1 - 2^-(retention_exp + retention_step * h): the fastest head's
    # half-life is about 2^retention_exp * ln 2 tokens (RetNet: 5 and 1).
    "retention_exp": ("2", "3", "4", "5", "6", "7", "8"),
    "retention_step": ("0.5", "1", "2"),
    # GLA's per-channel gate: the rank of its projection and the logit normaliser (16, 16).
    "gk_rank": ("8", "16", "32"),
    "gk_normalizer": ("4", "8", "16", "32", "64"),
    # Sliding window of the local path, in tokens.  No value between 16 and 64: the novelty
    # gate's probe batch is 24 tokens long, and windows that both cover it look identical there.
    "window": ("4", "8", "16", "64"),
    # Delta-rule (Householder) steps per token: 1 is DeltaNet, more is DeltaProduct.
    "householder": ("1", "2", "3"),
}

# The axes whose values are ordered numbers: mutation moves along them by steps.
SCALES: frozenset[str] = frozenset(
    {
        "conv_size", "heads", "expand_k", "expand_v", "d_state", "a_min", "a_max", "dt_min", "dt_max",
        "beta_bias", "retention_exp", "retention_step", "gk_rank", "gk_normalizer", "window", "householder",
    }
)


def tag(axis: str, value: str) -> str:
    """The canonical tag string, validated against the vocabulary."""
    if axis not in COMPONENTS:
        raise ValueError(f"unknown component axis {axis!r}; known: {sorted(COMPONENTS)}")
    if value not in COMPONENTS[axis]:
        raise ValueError(f"unknown value {value!r} for {axis!r}; known: {COMPONENTS[axis]}")
    return f"{axis}={value}"


def parse_tag(text: str) -> tuple[str, str]:
    """Split and validate ``axis=value``."""
    axis, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"component tag {text!r} is not of the form axis=value")
    tag(axis, value)
    return axis, value
