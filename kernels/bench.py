"""Forward+backward throughput of every implementation, and of flash-linear-attention's, in one process.

    python -m kernels.bench                 # CPU, float32, 2 threads, B=8 T=256 H=2 K=V=64
    python -m kernels.bench --gpu-target    # CUDA, bfloat16, B=4 T=4096 H=16 K=V=128

Prints a table, then one JSON line. Implementations are timed in interleaved rounds and the median
is kept, so a neighbour's load shifts all of them alike and the ratios stay meaningful. Each row also
gives the largest relative error of the output and input gradients against the case's first
implementation (naive, or the chunked PyTorch code where naive is skipped), and an implementation
that raises is reported as failed rather than ending the run: on a GPU, this is the first place
the Triton code meets real hardware. The
reference from flash-linear-attention (package `fla`, when installed) is its pure-PyTorch naive
chunked op on a CPU and its Triton chunked op on CUDA.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial

import torch

from kernels.common.testing import make_inputs, relative_error
from kernels.dispatch import causal_conv1d, implementation

# (benchmark case, op, gate): the search space's recurrences.
CASES: dict[str, tuple[str, str | None]] = {
    "linear_attn": ("linear_attn", None),
    "linear_attn_scalar_decay": ("linear_attn", "scalar"),
    "linear_attn_vector_decay": ("linear_attn", "vector"),
    "delta_rule": ("delta_rule", None),
    "gated_delta_rule": ("gated_delta_rule", None),
}

# case -> (module, function, argument names) of flash-linear-attention's reference, per device kind.
FLA_CPU: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "linear_attn": ("fla.ops.linear_attn.naive", "naive_chunk_linear_attn", ("q", "k", "v")),
    "linear_attn_scalar_decay": ("fla.ops.simple_gla.naive", "naive_chunk_simple_gla", ("q", "k", "v", "g")),
    "linear_attn_vector_decay": ("fla.ops.gla.naive", "naive_recurrent_gla", ("q", "k", "v", "g")),
    "delta_rule": ("fla.ops.delta_rule.naive", "delta_rule_chunkwise", ("q", "k", "v", "beta")),
    "gated_delta_rule": (
        "fla.ops.gated_delta_rule.naive",
        "naive_chunk_gated_delta_rule",
        ("q", "k", "v", "g", "beta"),
    ),
}
FLA_CUDA: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "linear_attn": ("fla.ops.linear_attn", "chunk_linear_attn", ("q", "k", "v")),
    "linear_attn_scalar_decay": ("fla.ops.simple_gla", "chunk_simple_gla", ("q", "k", "v", "g")),
    "linear_attn_vector_decay": ("fla.ops.gla", "chunk_gla", ("q", "k", "v", "g")),
    "delta_rule": ("fla.ops.delta_rule", "chunk_delta_rule", ("q", "k", "v", "beta")),
    "gated_delta_rule": ("fla.ops.gated_delta_rule", "chunk_gated_delta_rule", ("q", "k", "v", "g", "beta")),
}
# The causal short convolution (x: [B, T, H * K], a width-4 depthwise weight, SiLU), as the baselines
# use it: the padded Conv1d specification against the shifted multiply-adds.
CONV_CASE = "short_conv"
CONV_WIDTH = 4
# fla's delta_rule_chunkwise takes [B, H, T, K] rather than [B, T, H, K].
FLA_HEAD_FIRST = {"delta_rule_chunkwise"}


@dataclass(frozen=True)
class Measurement:
    case: str
    implementation: str
    ms: float
    tokens_per_s: float
    # Largest relative error of the output and input gradients against the case's first implementation.
    max_relative_error: float


def _ours(op: str, backend: str, form: str = "chunk", chunk_size: int | None = None) -> Callable[..., torch.Tensor]:
    """Our implementation of `op` in `form` on `backend`, called with keyword inputs, returning o."""
    run = implementation(op, form, backend)
    if chunk_size is not None:
        run = partial(run, chunk_size=chunk_size)

    def call(**inputs: torch.Tensor | None) -> torch.Tensor:
        return run(**inputs)[0]

    return call


def _fla(case: str, cuda: bool) -> Callable[..., torch.Tensor] | None:
    """flash-linear-attention's reference for `case`, or None when the package is missing."""
    module_name, name, argument_names = (FLA_CUDA if cuda else FLA_CPU)[case]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = getattr(importlib.import_module(module_name), name)
    except ImportError:
        return None

    def call(**inputs: torch.Tensor | None) -> torch.Tensor:
        arguments = [inputs[argument] for argument in argument_names]
        if name in FLA_HEAD_FIRST:
            arguments = [x.transpose(1, 2) for x in arguments]
            return run(*arguments)[0].transpose(1, 2)
        result = run(*arguments)
        return result[0] if isinstance(result, tuple) else result

    return call


def _time_rounds(
    runs: dict[str, Callable[..., torch.Tensor]],
    inputs: dict[str, torch.Tensor | None],
    repeats: int,
    cuda: bool,
) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """Time forward+backward of each implementation in interleaved rounds.

    The warm-up call also checks agreement: the output and every input gradient are compared with
    those of the first implementation that runs. An implementation that raises is dropped. Returns
    the median seconds, the largest relative error against that reference, and the failures.
    """
    leaves = [x for x in inputs.values() if x is not None]
    grad_o: list[torch.Tensor] = []  # drawn once, at the first output's shape

    def step(run: Callable[..., torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        o = run(**inputs)
        if not grad_o:
            grad_o.append(torch.randn(o.shape, device=o.device))
        grads = torch.autograd.grad((o.float() * grad_o[0]).sum(), leaves)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start, [o.detach(), *grads]

    errors: dict[str, float] = {}
    failures: dict[str, str] = {}
    reference: list[torch.Tensor] | None = None
    for name, run in list(runs.items()):  # warm-up: Triton compiles, allocators settle
        try:
            _, outputs = step(run)
        except Exception as error:  # one broken implementation must not end the benchmark
            failures[name] = f"{type(error).__name__}: {error}"[:500]
            del runs[name]
            continue
        reference = reference or outputs
        errors[name] = max(relative_error(x, y) for x, y in zip(outputs, reference, strict=True))
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            seconds[name].append(step(run)[0])
    return {name: statistics.median(times) for name, times in seconds.items()}, errors, failures


def _conv_runs() -> dict[str, Callable[..., torch.Tensor]]:
    def naive(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return causal_conv1d(x, weight, activation="silu", backend="naive")[0]

    def shift(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return causal_conv1d(x, weight, activation="silu", backend="torch")[0]

    return {"naive_conv1d": naive, "torch_shift": shift}


def _conv_inputs(B: int, T: int, D: int, dtype: torch.dtype, device: str) -> dict[str, torch.Tensor | None]:
    return {"x": torch.randn(B, T, D, dtype=dtype, device=device, requires_grad=True),
            "weight": (torch.randn(D, CONV_WIDTH, device=device) / 2).to(dtype).requires_grad_()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kernels.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-target", action="store_true", help="CUDA, bf16, B=4 T=4096 H=16 K=V=128")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per implementation")
    every_case = [*CASES, CONV_CASE]
    parser.add_argument("--cases", default=",".join(every_case),
                        help="comma-separated subset of " + ",".join(every_case))
    parser.add_argument("--shape", type=int, nargs=5, metavar=("B", "T", "H", "K", "V"))
    parser.add_argument("--no-naive", action="store_true", help="skip the step-by-step reference")
    parser.add_argument("--no-fla", action="store_true", help="skip flash-linear-attention's references")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    cuda = args.gpu_target or torch.cuda.is_available()
    if args.gpu_target and not torch.cuda.is_available():
        sys.exit("--gpu-target needs a CUDA device; none is visible")
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if args.gpu_target else torch.float32
    B, T, H, K, V = args.shape or ((4, 4096, 16, 128, 128) if args.gpu_target else (8, 256, 2, 64, 64))
    with_naive = not (args.no_naive or args.gpu_target)  # a 4096-step Python loop measures Python

    measurements: list[Measurement] = []
    failures: list[dict[str, str]] = []
    for case in args.cases.split(","):
        if case == CONV_CASE:
            medians, errors, case_failures = _time_rounds(_conv_runs(), _conv_inputs(B, T, H * K, dtype, device),
                                                          args.repeats, cuda)
            for name, seconds in medians.items():
                measurements.append(Measurement(case, name, seconds * 1e3, B * T / seconds, errors[name]))
            failures += [{"case": case, "implementation": name, "error": e} for name, e in case_failures.items()]
            print(f"measured {case}", file=sys.stderr, flush=True)
            continue
        op, gate = CASES[case]
        runs: dict[str, Callable[..., torch.Tensor]] = {}
        if with_naive:
            runs["naive"] = _ours(op, "naive")
        runs["torch_chunk64"] = _ours(op, "torch", chunk_size=64)
        runs["torch_chunk32"] = _ours(op, "torch", chunk_size=32)
        if cuda:
            runs["triton_chunk64"] = _ours(op, "triton")
            runs["triton_recurrent"] = _ours(op, "triton", form="recurrent")
        reference = None if args.no_fla else _fla(case, cuda)
        if reference is not None:
            runs["fla_" + (FLA_CUDA if cuda else FLA_CPU)[case][1]] = reference
        inputs = make_inputs(op, B, T, H, K, V, gate=gate, dtype=dtype, device=device)
        medians, errors, case_failures = _time_rounds(runs, inputs, args.repeats, cuda)
        for name, seconds in medians.items():
            measurements.append(Measurement(case, name, seconds * 1e3, B * T / seconds, errors[name]))
        failures += [{"case": case, "implementation": name, "error": error} for name, error in case_failures.items()]
        print(f"measured {case}", file=sys.stderr, flush=True)

    ratios = []
    by_case: dict[str, dict[str, Measurement]] = {}
    for m in measurements:
        by_case.setdefault(m.case, {})[m.implementation] = m
    for case, found in by_case.items():
        baselines = [name for name in found if name.startswith(("naive", "fla_"))]
        for name, m in found.items():
            for baseline in baselines:
                if name != baseline:
                    speedup = m.tokens_per_s / found[baseline].tokens_per_s
                    ratios.append({"case": case, "implementation": name, "versus": baseline, "speedup": speedup})

    targets = []
    cpu_target_shape = (B, T, H, K, V) == (8, 256, 2, 64, 64) and dtype == torch.float32 and not cuda
    if cpu_target_shape and args.threads == 2:
        # The CPU targets, for the chunked gated delta rule at its default chunk size (32).
        for ratio in ratios:
            if ratio["case"] == "gated_delta_rule" and ratio["implementation"] == "torch_chunk32":
                threshold = 10.0 if ratio["versus"] == "naive" else 3.0
                targets.append({**ratio, "at_least": threshold, "met": ratio["speedup"] >= threshold})

    device_name = torch.cuda.get_device_name() if cuda else f"cpu (threads={args.threads})"
    print(f"device: {device_name}; dtype: {str(dtype).removeprefix('torch.')}; B={B} T={T} H={H} K={K} V={V}")
    print(f"{'case':<26} {'implementation':<34} {'ms fwd+bwd':>11} {'tokens/s':>11} {'max rel. err':>12}")
    for m in measurements:
        print(
            f"{m.case:<26} {m.implementation:<34} {m.ms:>11.1f} {m.tokens_per_s:>11.0f} {m.max_relative_error:>12.1e}"
        )
    for failure in failures:
        print(f"{failure['case']:<26} {failure['implementation']:<34} FAILED: {failure['error']}")
    print(f"{'case':<26} {'implementation':<34} {'versus':<34} {'speedup':>8}")
    for r in ratios:
        print(f"{r['case']:<26} {r['implementation']:<34} {r['versus']:<34} {r['speedup']:>8.2f}")
    for target in targets:
        verdict = "met" if target["met"] else "MISSED"
        print(
            f"target: {target['implementation']} at least {target['at_least']:.0f}x {target['versus']}: "
            f"{target['speedup']:.2f}x, {verdict}"
        )
    summary = {
        "bench": "kernels",
        "device": device_name,
        "dtype": str(dtype).removeprefix("torch."),
        "threads": args.threads,
        "shape": {"B": B, "T": T, "H": H, "K": K, "V": V},
        "repeats": args.repeats,
        "results": [asdict(m) for m in measurements],
        "ratios": ratios,
        "targets": targets,
        "failures": failures,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
