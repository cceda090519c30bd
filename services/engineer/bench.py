"""Training speed of the Gated DeltaNet baseline under a profile: a benchmark, not a test.

`python -m services.engineer.bench [--profile cpu] [--threads 2]` times full training steps
(forward, backward, AdamW) of the harness's language model around the Gated DeltaNet
baseline, built twice in one process: on our `kernels.chunk_gated_delta_rule`, and, when
flash-linear-attention is installed, on its pure-PyTorch `naive_chunk_gated_delta_rule`
(the same mixer file with only that call swapped). Rounds are interleaved and the median
kept, since this machine is shared. Model-FLOPs utilisation is 6 x parameters x tokens/s
over a large fp32 matmul measured in the same process. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import types
from collections.abc import Callable

import torch

from services.engineer.baselines import baseline_code
from services.engineer.model import LanguageModel, ModelConfig
from services.engineer.profiles import get_profile

KERNEL_CALL = "chunk_gated_delta_rule(q, k, v, g, beta)"


def mixer_class(code: str, kernel: Callable[..., tuple[torch.Tensor, torch.Tensor | None]] | None) -> type:
    """The baseline's Mixer; with `kernel`, the same file calling that function instead of ours."""
    if kernel is not None:
        assert KERNEL_CALL in code, "the Gated DeltaNet baseline no longer calls the kernel as expected"
        code = code.replace(KERNEL_CALL, f"fla_kernel({KERNEL_CALL.split('(', 1)[1]}")
    module = types.ModuleType("gated_deltanet_bench")
    module.__dict__["fla_kernel"] = kernel
    exec(compile(code, "gated_deltanet.py", "exec"), module.__dict__)  # our own baseline file: trusted
    return module.Mixer


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    profile = get_profile(args.profile)
    config = ModelConfig(vocab_size=profile.vocab_size, d_model=profile.d_model, n_layers=profile.n_layers,
                         n_heads=profile.n_heads)
    code = baseline_code("gated_deltanet")
    variants: dict[str, type] = {"kernels.chunk_gated_delta_rule": mixer_class(code, None)}
    try:
        from fla.ops.gated_delta_rule.naive import naive_chunk_gated_delta_rule

        variants["fla naive_chunk_gated_delta_rule"] = mixer_class(code, naive_chunk_gated_delta_rule)
    except ImportError:
        pass

    models = {name: LanguageModel(config, mixer) for name, mixer in variants.items()}
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-3) for name, model in models.items()}
    tokens = torch.randint(0, 256, (profile.batch_size, profile.seq_len + 1))
    inputs, labels = tokens[:, :-1], tokens[:, 1:]

    def step(name: str) -> None:
        loss, _ = models[name](inputs, labels)
        optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[name].step()

    for name in models:  # warm-up: allocator, first-call costs
        step(name)
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name in models:
            started = time.perf_counter()
            for _ in range(args.steps):
                step(name)
            seconds[name].append((time.perf_counter() - started) / args.steps)
    peak = matmul_peak()

    batch_tokens = profile.batch_size * profile.seq_len
    rows = []
    for name, model in models.items():
        per_step = statistics.median(seconds[name])
        tokens_per_s = batch_tokens / per_step
        params = model.count_parameters()
        rows.append({"implementation": name, "ms_per_step": per_step * 1e3, "tokens_per_s": tokens_per_s,
                     "params": params, "mfu": 6 * params * tokens_per_s / peak})
    ours = rows[0]["tokens_per_s"]
    for row in rows:
        row["speed_vs_ours"] = row["tokens_per_s"] / ours

    print(f"Gated DeltaNet LM, profile {profile.name}: d={profile.d_model}, {profile.n_layers} layers, "
          f"{profile.n_heads} heads, batch {profile.batch_size} x {profile.seq_len}, {args.threads} threads; "
          f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(f"{'implementation':<36} {'ms/step':>9} {'tokens/s':>10} {'MFU':>7} {'vs ours':>8}")
    for row in rows:
        print(f"{row['implementation']:<36} {row['ms_per_step']:>9.1f} {row['tokens_per_s']:>10,.0f} "
              f"{row['mfu']:>7.1%} {row['speed_vs_ours']:>7.2f}x")
    speedups = {row["implementation"]: ours / row["tokens_per_s"] for row in rows[1:]}
    for name, speedup in speedups.items():
        print(f"ours trains {speedup:.2f}x as fast as the same model on {name}")
    print(json.dumps({"bench": "engineer", "profile": profile.name, "threads": args.threads,
                      "matmul_peak_flops": peak, "results": rows, "speedup_of_ours_over": speedups}, sort_keys=True))


if __name__ == "__main__":
    main()
