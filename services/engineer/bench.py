"""Training speed of the Gated DeltaNet baseline under a profile: a benchmark, not a test.

`python -m services.engineer.bench [--profile cpu] [--threads 2]` times full training steps
(forward, backward, AdamW) of the harness's language model around the Gated DeltaNet
baseline, built twice in one process: on our `kernels.chunk_gated_delta_rule`, and, when
flash-linear-attention is installed, on its pure-PyTorch `naive_chunk_gated_delta_rule`
(the same mixer file with only that call swapped). Rounds are interleaved and the median
kept, since this machine is shared. Model-FLOPs utilisation is 6 x parameters x tokens/s
over a large fp32 matmul measured in the same process. Prints a table and one JSON line.

`python -m services.engineer.bench --experiment [--profile cpu] [--baselines deltanet,...]
[--reference REV] [--engineers N]` runs whole sandboxed experiments of baselines, exactly as the
worker runs them (`run_experiment`), and breaks each one's wall time into phases: process start,
imports, the warm-up before the jail, the static check, each probe, training (setup, text rows,
task rows, optimizer), evaluation (text, tasks), the checkpoint and the result hand-back (the
remainder: the child's exit, moving and hashing the checkpoint). With `--reference REV` the same
experiments also run on git revision REV's code (extracted with `git archive`, run in a
subprocess, one engineer as today), interleaved with ours, and the ratio of experiments per hour is
reported. With `--engineers N`, N of ours run at once, each on cores / N threads, as N engineer
workers would.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from services.engineer.baselines import baseline_code
from services.engineer.data import prepare_corpus
from services.engineer.harness import run_experiment, static_check
from services.engineer.model import LanguageModel, ModelConfig
from services.engineer.placement import usable_cores
from services.engineer.profiles import get_profile
from services.engineer.train import make_optimizer

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


# The phases of one experiment, in the order they happen; the child names them in its "phase" events.
PHASES = ("process_start", "imports", "warm_up", "static_check", "build", "forward_backward", "finite", "causal",
          "complexity", "params", "train_setup", "train_text", "train_tasks", "train_optimizer", "eval_text",
          "eval_tasks", "checkpoint", "hand_back")
# Runs one experiment on another checkout's code (the reference): imports first, then the timed call.
REFERENCE_SCRIPT = """
import json, sys, time
from services.engineer.baselines import baseline_code
from services.engineer.data import prepare_corpus
from services.engineer.harness import run_experiment
from pathlib import Path
name, profile, seed, data_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
prepare_corpus(None, data_dir)
started = time.perf_counter()
result = run_experiment(baseline_code(name), profile, seed, data_dir=data_dir)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "ok": result["ok"], "val_loss": result.get("val_loss"),
                  "benchmark_mean": result.get("benchmark_mean")}))
"""


def timed_experiment(name: str, profile: str, seed: int, data_dir: Path, threads: int | None = None) -> dict:
    """One sandboxed experiment of baseline `name`, with its seconds per phase."""
    code = baseline_code(name)
    started = time.perf_counter()
    static_check(code)  # run_experiment reads the code again; this times that reading
    static = time.perf_counter() - started
    started = time.perf_counter()
    result = run_experiment(code, profile, seed, data_dir=data_dir, threads=threads)
    seconds = time.perf_counter() - started + static
    if not result["ok"]:
        raise RuntimeError(f"baseline {name} failed: {result['failure']}")
    phases = {"static_check": static, **result["phases"]}
    phases["hand_back"] = seconds - sum(phases.values())
    return {"name": name, "seed": seed, "seconds": seconds, "phases": phases, "val_loss": result["val_loss"],
            "benchmark_mean": result["benchmark_mean"], "tokens_per_s": result["tokens_per_s"], "mfu": result["mfu"]}


def reference_experiment(tree: Path, name: str, profile: str, seed: int, data_dir: Path) -> dict:
    """The same experiment on the reference checkout at `tree`, in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    finished = subprocess.run([sys.executable, "-c", REFERENCE_SCRIPT, name, profile, str(seed), str(data_dir)],
                              cwd=tree, env=env, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"reference run failed:\n{finished.stderr[-3000:]}")
    return {"name": name, "seed": seed, **json.loads(finished.stdout.strip().splitlines()[-1])}


def extract_revision(revision: str, into: Path) -> Path:
    """`git archive` of `revision` unpacked into `into`: the code as it was, runnable beside ours."""
    root = Path(__file__).resolve().parents[2]
    archive = subprocess.run(["git", "-C", str(root), "archive", revision], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def experiment_main(args: argparse.Namespace) -> None:
    names = args.baselines.split(",")
    cores = usable_cores()
    threads = get_profile(args.profile).threads or max(1, cores // args.engineers)
    with tempfile.TemporaryDirectory(prefix="asi-bench-") as scratch:
        data_dir, reference_dir = Path(scratch) / "ours", Path(scratch) / "reference"
        prepare_corpus(None, data_dir)
        tree = None
        if args.reference:
            tree = extract_revision(args.reference, Path(tempfile.mkdtemp(dir=scratch, prefix="tree-")))
        jobs = [(name, seed) for _ in range(args.repeats) for name in names for seed in range(args.seeds)]
        ours: list[dict] = []
        reference: list[dict] = []
        our_wall = reference_wall = 0.0
        # Rounds of one experiment per engineer: ours run at once, the reference's one after another
        # (today's one engineer); which goes first alternates, so a change in load hits both alike.
        rounds = [jobs[start : start + args.engineers] for start in range(0, len(jobs), args.engineers)]
        with ThreadPoolExecutor(args.engineers) as pool:
            for index, batch in enumerate(rounds):
                for which in ("ours", "reference") if index % 2 == 0 else ("reference", "ours"):
                    started = time.perf_counter()
                    if which == "ours":
                        done = list(pool.map(lambda job: timed_experiment(job[0], args.profile, job[1], data_dir,
                                                                          threads), batch))
                        ours += done
                        our_wall += time.perf_counter() - started
                    elif tree is not None:
                        done = [reference_experiment(tree, name, args.profile, seed, reference_dir)
                                for name, seed in batch]
                        reference += done
                        reference_wall += time.perf_counter() - started
                    else:
                        continue
                    for run in done:
                        print(f"{which:<9} {run['name']} seed {run['seed']}: {run['seconds']:.1f} s", file=sys.stderr)

    mean_phases = {phase: statistics.mean(run["phases"].get(phase, 0.0) for run in ours) for phase in PHASES}
    for run in ours:  # phases this table does not know yet (a new probe) still show
        for phase in run["phases"]:
            mean_phases.setdefault(phase, statistics.mean(r["phases"].get(phase, 0.0) for r in ours))
    per_experiment = statistics.mean(run["seconds"] for run in ours)
    # N engineers finish N experiments per wall-clock span: throughput is the number done over the span.
    per_hour = 3600 * len(ours) / our_wall
    summary: dict = {"bench": "engineer-experiment", "profile": args.profile, "baselines": names,
                     "seeds": args.seeds, "repeats": args.repeats, "engineers": args.engineers,
                     "threads_per_engineer": threads, "cores": cores, "seconds_per_experiment": per_experiment,
                     "experiments_per_hour": per_hour, "phases": mean_phases, "runs": ours}
    print(f"profile {args.profile}: {len(ours)} experiments of {', '.join(names)}; {args.engineers} engineer(s) x "
          f"{threads} thread(s) on {cores} cores")
    print(f"{'phase':<18} {'seconds':>9} {'share':>7}")
    for phase, seconds in mean_phases.items():
        print(f"{phase:<18} {seconds:>9.2f} {seconds / per_experiment:>7.1%}")
    print(f"{'experiment':<18} {per_experiment:>9.2f} {1:>7.1%}")
    print(f"experiments per hour: {per_hour:.1f}")
    if reference:
        reference_seconds = statistics.mean(run["seconds"] for run in reference)
        reference_per_hour = 3600 * len(reference) / reference_wall
        summary["reference"] = {"revision": args.reference, "seconds_per_experiment": reference_seconds,
                                "experiments_per_hour": reference_per_hour, "engineers": 1, "runs": reference}
        summary["speedup_over_reference"] = per_hour / reference_per_hour
        print(f"reference {args.reference} (1 engineer, its default threads): {reference_seconds:.2f} s per "
              f"experiment, {reference_per_hour:.1f} per hour; ours does {per_hour / reference_per_hour:.2f}x "
              "the experiments per hour")
    print(json.dumps(summary, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--experiment", action="store_true", help="time whole experiments, phase by phase")
    parser.add_argument("--baselines", default="deltanet", help="--experiment: comma-separated baselines to run")
    parser.add_argument("--seeds", type=int, default=1, help="--experiment: seeds per baseline")
    parser.add_argument("--repeats", type=int, default=1, help="--experiment: passes over the baselines")
    parser.add_argument("--reference", help="--experiment: a git revision to time the same experiments on")
    parser.add_argument("--engineers", type=int, default=1, help="--experiment: experiments run at once")
    args = parser.parse_args()
    if args.experiment:
        experiment_main(args)
        return
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
    optimizers = {name: make_optimizer(model, profile) for name, model in models.items()}  # the trainer's
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
