"""Functional novelty: do two candidate files compute the same function?

Two motivations can read differently and describe the same layer, and two files can
differ in names, comments and order of definitions and still compute the same thing.
The functional fingerprint looks at what the code does: it builds the ``Mixer`` under
a fixed torch seed, runs it on a fixed probe batch and hashes the outputs, rounded.

Trust: both functions here execute the candidate in this process.  That is acceptable
only for code the offline mind rendered itself from a genome (``genome.render``), whose
every line comes from this repository.  Any other code (an LLM's, a person's) must be
fingerprinted inside the engineer's sandbox, which can call :func:`functional_fingerprint`
there and send back the string.
"""

from __future__ import annotations

import hashlib

import torch

# Outputs are compared through a few fixed random projections rounded to this many
# decimals of the output's own scale: coarse enough that two implementations of the
# same function (whose float sums differ in the last bits) agree, fine enough that any
# real design change moves at least one of them.
_PROJECTIONS = 16
_DECIMALS = 3


def load_mixer_class(code: str) -> type[torch.nn.Module]:
    """Execute trusted candidate code and return its ``Mixer`` class."""
    namespace: dict[str, object] = {"__name__": "asi_arch_candidate"}
    exec(compile(code, "<candidate>", "exec"), namespace)
    mixer = namespace.get("Mixer")
    if not (isinstance(mixer, type) and issubclass(mixer, torch.nn.Module)):
        raise ValueError("candidate code defines no `class Mixer(torch.nn.Module)`")
    return mixer


def functional_fingerprint(code: str, *, d_model: int = 32, n_heads: int = 2, seq_len: int = 24, seed: int = 0) -> str:
    """A hex digest equal for files that compute the same function, different otherwise.

    Only for trusted code (see the module docstring).  Leaves the global torch RNG as
    it found it.
    """
    mixer_class = load_mixer_class(code)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mixer = mixer_class(d_model, n_heads)
        probe_rng = torch.Generator().manual_seed(seed + 1)
        x = torch.randn(2, seq_len, d_model, generator=probe_rng)
        projections = torch.randn(d_model, _PROJECTIONS, generator=probe_rng)
        mixer.eval()
        with torch.no_grad():
            y = mixer(x).double()  # [2, seq_len, d_model]
    if y.shape != x.shape:
        raise ValueError(f"Mixer maps {tuple(x.shape)} to {tuple(y.shape)}, not to the same shape")
    if not torch.isfinite(y).all():
        return "non-finite:" + hashlib.sha256(code.encode()).hexdigest()[:16]
    # One projection per output feature direction, averaged over the batch and time, then
    # each time step's mean too: the summary keeps both what and when.
    summary = torch.cat([(y @ projections.double()).mean(dim=(0, 1)), y.mean(dim=(0, 2))])
    scale = y.abs().mean().clamp(min=1e-12)
    rounded = torch.round(summary / scale * 10**_DECIMALS).to(torch.int64)
    digest = hashlib.sha256(rounded.numpy().tobytes())
    digest.update(str(tuple(y.shape)).encode())
    return digest.hexdigest()[:32]
