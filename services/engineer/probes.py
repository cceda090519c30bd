"""Pre-flight probes: cheap tests a candidate mixer must pass before any training.

Run in order, each returning a measurement dict with ``"ok"``; the first that fails stops
the rest (a later check would only repeat the earlier failure), and its failure kind tells
the researcher what to repair.  All run on a small probe width so they take a few seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

PROBE_D_MODEL = 64  # probes use a small width: the properties tested do not depend on it
PROBE_HEADS = 2
SHAPES = ((1, 37), (3, 64))  # two batch sizes; 37 is odd and not a multiple of any chunk size
CAUSAL_LEN = 48
CAUSAL_TOL = 1e-4  # relative to the output's scale; a real leak moves outputs by O(1)
COMPLEXITY_LENGTHS = (256, 512, 1024)  # long enough that a T^2 term outgrows the O(T) projections
QUADRATIC_EXPONENT = 1.5  # above this the cost grows faster than T^1.5: rejected as quadratic
PARAM_TOLERANCE = 0.5  # within +-50% of DeltaNet: room for one extra d x d projection, no more

MakeMixer = Callable[[int, int], nn.Module]


class ProbeFailure(Exception):
    """A probe found a property violated; ``kind`` is the failure kind reported to the researcher."""

    def __init__(self, kind: str, message: str, result: dict | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.result = result or {}


def _inputs(batch: int, length: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, PROBE_D_MODEL, generator=generator)


def check_forward_backward(mixer: nn.Module) -> dict:
    timings = {}
    for batch, length in SHAPES:
        x = _inputs(batch, length, seed=batch).requires_grad_(True)
        started = time.perf_counter()
        y = mixer(x)
        if not isinstance(y, torch.Tensor) or y.shape != x.shape:
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ProbeFailure("runtime_error", f"forward mapped {tuple(x.shape)} to {shape}; must keep the shape")
        y.square().mean().backward()
        timings[f"{batch}x{length}"] = round(1000 * (time.perf_counter() - started), 2)
        # A parameter the output never reaches is dead weight: it counts against the budget and
        # shifts the initialisation's random stream (which can fake novelty), but learns nothing.
        unused = [name for name, p in mixer.named_parameters() if p.requires_grad and p.grad is None]
        if unused:
            count = sum(p.numel() for name, p in mixer.named_parameters() if name in unused)
            raise ProbeFailure("unused_parameters",
                               f"parameters the output does not depend on (no gradient reaches them): "
                               f"{', '.join(unused)} ({count} values); use them in forward or remove them",
                               {"ok": False, "unused": unused, "values": count})
        mixer.zero_grad(set_to_none=True)
        if x.grad is None:
            raise ProbeFailure("runtime_error", "the output does not depend on the input (no gradient reaches x)")
    return {"ok": True, "shapes": [list(s) for s in SHAPES], "ms": timings}


def check_finite(mixer: nn.Module) -> dict:
    x = _inputs(2, 64, seed=7).requires_grad_(True)
    y = mixer(x)
    y.square().mean().backward()
    bad_grads = [name for name, p in mixer.named_parameters() if p.grad is not None and not p.grad.isfinite().all()]
    mixer.zero_grad(set_to_none=True)
    finite_output = bool(y.isfinite().all())
    finite_input_grad = bool(x.grad.isfinite().all())
    result = {"ok": finite_output and finite_input_grad and not bad_grads, "output_finite": finite_output,
              "input_grad_finite": finite_input_grad, "non_finite_param_grads": bad_grads}
    if not result["ok"]:
        raise ProbeFailure("non_finite", f"non-finite values: {result}", result)
    return result


@torch.no_grad()
def check_causal(mixer: nn.Module) -> dict:
    """Perturbing tokens after t must leave outputs at and before t unchanged, and rows independent."""
    was_training = mixer.training
    mixer.eval()  # dropout would make two runs differ for reasons other than leakage
    x = _inputs(2, CAUSAL_LEN, seed=11)
    y = mixer(x)
    scale = float(y.abs().max()) + 1e-6
    worst = 0.0
    leaks = []
    for t in (0, CAUSAL_LEN // 3, CAUSAL_LEN // 2, CAUSAL_LEN - 2):
        perturbed = x.clone()
        perturbed[:, t + 1 :] = _inputs(2, CAUSAL_LEN - t - 1, seed=100 + t)
        change = float((mixer(perturbed)[:, : t + 1] - y[:, : t + 1]).abs().max()) / scale
        worst = max(worst, change)
        if change > CAUSAL_TOL:
            leaks.append(t)
    # The same tokens without their future: a mixer that looks at the length (a divide by T, a
    # padding that depends on it) passes the perturbation test but not this one.
    prefix_change = 0.0
    for t in (CAUSAL_LEN // 3, CAUSAL_LEN - 2):
        change = float((mixer(x[:, : t + 1]) - y[:, : t + 1]).abs().max()) / scale
        prefix_change = max(prefix_change, change)
    other_row = x.clone()
    other_row[1] = _inputs(1, CAUSAL_LEN, seed=99)[0]
    batch_change = float((mixer(other_row)[0] - y[0]).abs().max()) / scale
    mixer.train(was_training)
    result = {"ok": not leaks and prefix_change <= CAUSAL_TOL and batch_change <= CAUSAL_TOL,
              "max_relative_change": worst, "leaking_positions": leaks, "prefix_change": prefix_change,
              "batch_leak": batch_change, "tolerance": CAUSAL_TOL}
    if leaks:
        raise ProbeFailure("non_causal", f"outputs at positions <= {leaks[0]} change when later tokens change "
                                         f"(relative change {worst:.3g})", result)
    if prefix_change > CAUSAL_TOL:
        raise ProbeFailure("non_causal", "outputs for a prefix differ from the same positions of the whole "
                                         f"sequence (relative change {prefix_change:.3g}): the mixer depends "
                                         "on the sequence's length", result)
    if batch_change > CAUSAL_TOL:
        raise ProbeFailure("non_causal", "one row's output changes when another row of the batch changes "
                                         "(statistics shared across the batch leak the future)", result)
    return result


def _matmul_flops(func, args: tuple, out: object) -> int:
    """Multiply-add FLOPs of the ops that can hide O(T^2) work behind an O(T) output."""
    name = func.__name__.split(".")[0]
    if name in ("mm", "bmm", "addmm", "baddbmm", "addbmm"):
        a, b = (args[1], args[2]) if name.startswith("add") or name == "baddbmm" else (args[0], args[1])
        return 2 * a.numel() * b.shape[-1]  # [.., m, k] @ [.., k, n]: 2*m*k*n per batch
    if name == "convolution":
        weight = args[1]
        return 2 * out.numel() * weight[0].numel()  # each output reads in_channels/groups * kernel taps
    if name.startswith("_scaled_dot_product"):
        q, k, v = args[0], args[1], args[2]  # [B, H, T, D], [B, H, S, D], [B, H, S, Dv]
        return 2 * q.numel() * k.shape[-2] + 2 * q[..., :1].numel() * k.shape[-2] * v.shape[-1]
    return 0


class CostCounter(TorchDispatchMode):
    """FLOPs of matrix products, and bytes of every tensor every op returns.

    The bytes show a quadratic score matrix however it is computed (a matmul, a broadcast
    product, a Python loop of slices); the FLOPs show one computed inside a fused kernel that
    never writes it (the CPU attention kernel).  Self-made rather than torch's FlopCounterMode,
    which imports TorchDynamo (seconds of start-up) on first use, and does not count CPU attention.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Nothing here is compiled; without this torch wraps __torch_dispatch__ in a guard whose
        # first call imports TorchDynamo, seconds of start-up per sandboxed check.
        return False

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.flops += _matmul_flops(func, args, out)
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.bytes += tensor.numel() * tensor.element_size()
        return out


def _exponent(lengths: tuple[int, ...], values: list[float]) -> float | None:
    """Growth exponent between the two largest lengths: the asymptote, not the fixed overhead."""
    if values[-1] <= 0 or values[-2] <= 0:
        return None
    return math.log(values[-1] / values[-2]) / math.log(lengths[-1] / lengths[-2])


@torch.no_grad()
def check_complexity(mixer: nn.Module, exempt: bool) -> dict:
    """Cost at growing lengths: FLOPs and bytes written (exact: they decide) and wall time (reported:
    on a shared machine it is too noisy to reject on)."""
    mixer.eval()
    flops, written, seconds = [], [], []
    for length in COMPLEXITY_LENGTHS:
        x = _inputs(1, length, seed=length)
        counter = CostCounter()
        with counter:
            mixer(x)  # also the warm-up for the timed run
        flops.append(float(counter.flops))
        written.append(float(counter.bytes))
        started = time.perf_counter()
        mixer(x)
        seconds.append(time.perf_counter() - started)
    mixer.train()
    exponents = {"flops": _exponent(COMPLEXITY_LENGTHS, flops), "memory": _exponent(COMPLEXITY_LENGTHS, written),
                 "time": _exponent(COMPLEXITY_LENGTHS, seconds)}
    deciding = [e for e in (exponents["flops"], exponents["memory"]) if e is not None]
    exponent = max(deciding) if deciding else exponents["time"]
    quadratic = exponent > QUADRATIC_EXPONENT
    result = {"ok": exempt or not quadratic, "exponent": round(exponent, 3), "quadratic": quadratic,
              "exempt": exempt, "exponents": {k: None if v is None else round(v, 3) for k, v in exponents.items()},
              "lengths": list(COMPLEXITY_LENGTHS), "flops": flops, "bytes_written": written,
              "seconds": [round(s, 5) for s in seconds], "threshold": QUADRATIC_EXPONENT}
    if not result["ok"]:
        raise ProbeFailure("quadratic", f"cost grows as T^{exponent:.2f} between T={COMPLEXITY_LENGTHS[-2]} and "
                                        f"T={COMPLEXITY_LENGTHS[-1]} (limit T^{QUADRATIC_EXPONENT}); the mixer "
                                        "must be sub-quadratic in sequence length", result)
    return result


def check_params(count: int, reference: int, d_model: int, n_heads: int) -> dict:
    ratio = count / reference
    result = {"ok": abs(ratio - 1) <= PARAM_TOLERANCE, "params": count, "reference_params": reference,
              "reference": "deltanet", "ratio": round(ratio, 4), "tolerance": PARAM_TOLERANCE,
              "d_model": d_model, "n_heads": n_heads}
    if not result["ok"]:
        allowed = f"{1 - PARAM_TOLERANCE:.2f}x-{1 + PARAM_TOLERANCE:.2f}x"
        raise ProbeFailure("params_out_of_budget", f"the mixer has {count} parameters at d_model={d_model}, "
                                                   f"n_heads={n_heads}: {ratio:.2f}x DeltaNet's {reference} "
                                                   f"(allowed {allowed})", result)
    return result


def training_length(profile: object | None) -> int:
    """The longest sequence a profile trains on (text or any capability task); without a profile,
    several times the short probe's length."""
    if profile is None:
        return 4 * CAUSAL_LEN
    return max([profile.seq_len, *(task.seq_len for task in profile.tasks)])  # type: ignore[attr-defined]


def _relative_change(a: torch.Tensor, b: torch.Tensor, scale: float) -> float:
    return float((a - b).abs().max()) / scale


@torch.no_grad()
def check_causal_at_length(mixer: nn.Module, length: int, d_model: int) -> dict:
    """The causal probe at the training length and width: a mixer may look ahead only on long
    inputs (a branch on T, a window that opens past the short probe's length), which the short
    probe cannot see. One row, a few forward passes."""
    was_training = mixer.training
    mixer.eval()
    generator = torch.Generator().manual_seed(23)
    x = torch.randn(1, length, d_model, generator=generator)
    y = mixer(x)
    scale = float(y.abs().max()) + 1e-6
    positions = sorted({length // 2, length - 2, min(length - 2, CAUSAL_LEN + length // 4)})
    changes = {}
    for t in positions:
        perturbed = x.clone()
        perturbed[:, t + 1:] = torch.randn(1, length - t - 1, d_model, generator=generator)
        changes[t] = _relative_change(mixer(perturbed)[:, : t + 1], y[:, : t + 1], scale)
    prefix = length // 2
    prefix_change = _relative_change(mixer(x[:, : prefix + 1]), y[:, : prefix + 1], scale)
    mixer.train(was_training)
    leaks = [t for t, change in changes.items() if change > CAUSAL_TOL]
    result = {"ok": not leaks and prefix_change <= CAUSAL_TOL, "length": length, "d_model": d_model,
              "changes": {str(t): c for t, c in changes.items()}, "leaking_positions": leaks,
              "prefix_change": prefix_change, "tolerance": CAUSAL_TOL}
    if leaks:
        raise ProbeFailure("non_causal", f"at the training length {length}, outputs at positions <= {leaks[0]} "
                                         f"change when later tokens change (relative change "
                                         f"{changes[leaks[0]]:.3g}); the short probe at {CAUSAL_LEN} tokens "
                                         "passed", result)
    if prefix_change > CAUSAL_TOL:
        raise ProbeFailure("non_causal", f"at the training length {length}, outputs for a prefix differ from "
                                         f"the whole sequence's (relative change {prefix_change:.3g})", result)
    return result


@torch.no_grad()
def trained_model_causality(model: nn.Module, tokens: torch.Tensor, vocab_size: int) -> dict:
    """The leak rule's re-check of a trained language model: hidden states at and before t must not
    change when the tokens after t are replaced. ``tokens`` is ``[1, T]`` at the training length."""
    model.eval()
    _, length = tokens.shape
    hidden = model.hidden(tokens)  # type: ignore[operator]
    scale = float(hidden.abs().max()) + 1e-6
    generator = torch.Generator().manual_seed(29)
    changes = {}
    for t in sorted({CAUSAL_LEN // 2, length // 4, length // 2, length - 2}):
        perturbed = tokens.clone()
        perturbed[:, t + 1:] = torch.randint(0, vocab_size, (1, length - t - 1), generator=generator)
        changes[t] = _relative_change(model.hidden(perturbed)[:, : t + 1], hidden[:, : t + 1], scale)  # type: ignore[operator]
    leaks = [t for t, change in changes.items() if change > CAUSAL_TOL]
    return {"causal": not leaks, "length": length, "changes": {str(t): c for t, c in changes.items()},
            "leaking_positions": leaks, "max_relative_change": max(changes.values()), "tolerance": CAUSAL_TOL}
