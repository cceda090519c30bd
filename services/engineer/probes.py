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
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

PROBE_D_MODEL = 64  # probes use a small width: the properties tested do not depend on it
PROBE_HEADS = 2
SHAPES = ((1, 37), (3, 64))  # two batch sizes; 37 is odd and not a multiple of any chunk size
CAUSAL_LEN = 48
CAUSAL_TOL = 1e-4  # relative to the output's scale; a real leak moves outputs by O(1)
COMPLEXITY_LENGTHS = (256, 512, 1024, 2048)
QUADRATIC_EXPONENT = 1.5  # above this the cost grows faster than T^1.5: rejected as quadratic
PARAM_TOLERANCE = 0.5  # within +-50% of DeltaNet: room for one extra d x d projection, no more

MakeMixer = Callable[[int, int], nn.Module]


class ProbeFailure(Exception):
    """A probe found a property violated; ``kind`` is the failure kind reported to the researcher."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


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
        raise ProbeFailure("non_finite", f"non-finite values: {result}")
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
    other_row = x.clone()
    other_row[1] = _inputs(1, CAUSAL_LEN, seed=99)[0]
    batch_change = float((mixer(other_row)[0] - y[0]).abs().max()) / scale
    mixer.train(was_training)
    result = {"ok": not leaks and batch_change <= CAUSAL_TOL, "max_relative_change": worst,
              "leaking_positions": leaks, "batch_leak": batch_change, "tolerance": CAUSAL_TOL}
    if leaks:
        raise ProbeFailure("non_causal", f"outputs at positions <= {leaks[0]} change when later tokens change "
                                         f"(relative change {worst:.3g})")
    if batch_change > CAUSAL_TOL:
        raise ProbeFailure("non_causal", "one row's output changes when another row of the batch changes "
                                         "(statistics shared across the batch leak the future)")
    return result


# FlopCounterMode knows the CUDA attention kernels but not the CPU one; without this entry a
# Transformer's T^2 work would go uncounted (its fused kernel never writes the score matrix).
def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


CPU_ATTENTION_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


def flop_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS)


class BytesWritten(TorchDispatchMode):
    """Counts the bytes of every tensor every op returns: a quadratic score matrix shows here
    however it is computed (matmul, broadcast product or a Python loop of slices)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
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
    """Cost at growing lengths: FLOPs and bytes written (exact, decide) and wall time (reported)."""
    mixer.eval()
    flops, written, seconds = [], [], []
    for length in COMPLEXITY_LENGTHS:
        x = _inputs(1, length, seed=length)
        counter = flop_counter()
        with counter:
            mixer(x)
        flops.append(float(counter.get_total_flops()))
        bytes_mode = BytesWritten()
        with bytes_mode:
            mixer(x)
        written.append(float(bytes_mode.bytes))
        best = math.inf
        for _ in range(2):
            started = time.perf_counter()
            mixer(x)
            best = min(best, time.perf_counter() - started)
        seconds.append(best)
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
                                        "must be sub-quadratic in sequence length")
    return result


def check_params(count: int, reference: int, d_model: int, n_heads: int) -> dict:
    ratio = count / reference
    result = {"ok": abs(ratio - 1) <= PARAM_TOLERANCE, "params": count, "reference_params": reference,
              "reference": "deltanet", "ratio": round(ratio, 4), "tolerance": PARAM_TOLERANCE,
              "d_model": d_model, "n_heads": n_heads}
    if not result["ok"]:
        raise ProbeFailure("params_out_of_budget", f"the mixer has {count} parameters at d_model={d_model}, "
                                                   f"n_heads={n_heads}: {ratio:.2f}x DeltaNet's {reference} "
                                                   f"(allowed {1 - PARAM_TOLERANCE:.2f}x-{1 + PARAM_TOLERANCE:.2f}x)")
    return result
