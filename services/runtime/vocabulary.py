"""The fixed vocabulary of component tags.

Cognition entries are tagged with it and the researcher acts on it: a tag
``axis=value`` names one design choice of a token mixer.  Keeping the axes in one
place is what lets a retrieved paper become a concrete code change.
"""

COMPONENTS: dict[str, tuple[str, ...]] = {
    # How the state is written: additive (linear attention) or error-correcting (delta rule).
    "update": ("linear", "delta"),
    # How the state forgets: not at all, a fixed rate (RetNet), a data-dependent scalar
    # per head (Mamba2, Gated DeltaNet) or a data-dependent vector per key channel (GLA).
    "decay": ("none", "fixed", "scalar", "vector"),
    # A short causal depthwise convolution on q, k, v before the mixer.
    "conv": ("none", "short"),
    # A data-dependent gate on the mixer output.
    "gate": ("none", "output"),
    # Normalisation of queries and keys before the recurrence.
    "qk_norm": ("none", "l2"),
    # Feature map applied to queries and keys.
    "feature_map": ("identity", "elu1", "silu", "relu"),
    # Range of the delta-rule write strength; (0, 2) admits negative eigenvalues.
    "beta_range": ("0_1", "0_2"),
    # Normalisation of the mixer output per head.
    "out_norm": ("none", "rms"),
    # A single recurrent path, or a local sliding-window path beside the global one.
    "path": ("single", "local_global"),
}


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
