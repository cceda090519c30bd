"""The training loop: a plain AdamW loop over a text + capability-task mixture, then evaluation.

Each step sees ``batch_size`` text rows (every position supervised) and each capability tier's
``rows`` (only the asked positions supervised); the loss is the sum of the text loss and the
mean loss over all asked task positions.  Order per step, as in nanoGPT: learning rate -> step
-> log -> stop; evaluation and the checkpoint come once, at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from services.engineer.data import text_batch, validation_batches
from services.engineer.model import LanguageModel
from services.engineer.probes import CostCounter
from services.engineer.profiles import Profile
from services.engineer.tasks import IGNORE, make_instances

EVAL_SEED = 2**31 - 1  # task instances for evaluation come from a stream no training seed uses


def learning_rate(step: int, profile: Profile) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``min_lr`` at the last step."""
    if step < profile.warmup_steps:
        return profile.lr * (step + 1) / profile.warmup_steps
    progress = (step - profile.warmup_steps) / max(1, profile.steps - 1 - profile.warmup_steps)
    return profile.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (profile.lr - profile.min_lr)


class AdamW:
    """torch.optim.AdamW's update (decoupled weight decay, bias-corrected moments), on foreach ops.

    Not torch.optim's own because its first optimizer imports TorchDynamo through its decorators:
    2-8 s of every sandboxed experiment on this machine, for nothing we use. The state dict has
    torch.optim's layout (``state`` by parameter index, ``param_groups`` with ``params`` indices), so
    ``torch.optim.AdamW.load_state_dict`` reads a checkpoint's optimizer as readily as this class.
    """

    def __init__(self, groups: list[dict], lr: float, betas: tuple[float, float], eps: float = 1e-8) -> None:
        self.param_groups = [{"lr": lr, "betas": betas, "eps": eps, "weight_decay": 0.0, **group,
                              "params": list(group["params"])} for group in groups]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for param in params:
                if param not in self.state:
                    self.state[param] = {"step": torch.zeros((), dtype=torch.float32),
                                         "exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}
            states = [self.state[p] for p in params]
            grads = [p.grad for p in params]
            exp_avgs, exp_avg_sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
            for state in states:
                state["step"] += 1
            step = int(states[0]["step"])  # a group's parameters are stepped together
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            if group["weight_decay"]:
                torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
            denominators = torch._foreach_sqrt(exp_avg_sqs)
            torch._foreach_div_(denominators, math.sqrt(1 - beta2**step))
            torch._foreach_add_(denominators, eps)
            torch._foreach_addcdiv_(params, exp_avgs, denominators, -lr / (1 - beta1**step))

    def state_dict(self) -> dict:
        index = {p: i for i, p in enumerate(p for group in self.param_groups for p in group["params"])}
        groups = [{**{k: v for k, v in group.items() if k != "params"}, "params": [index[p] for p in group["params"]]}
                  for group in self.param_groups]
        return {"state": {index[p]: dict(state) for p, state in self.state.items()}, "param_groups": groups}


def make_optimizer(model: LanguageModel, profile: Profile) -> AdamW:
    # Decay matrices only: norms, biases and 1-d gate parameters (A_log, dt_bias) keep their init.
    decayed = [p for p in model.parameters() if p.dim() >= 2]
    kept = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decayed, "weight_decay": profile.weight_decay}, {"params": kept, "weight_decay": 0.0}]
    return AdamW(groups, lr=profile.lr, betas=(0.9, 0.95))


def task_batches(profile: Profile, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One step's task rows, one batch per sequence length: tiers of equal length share a forward."""
    by_length: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for task in profile.tasks:
        instances = make_instances(task, profile.task_vocabulary, task.rows, generator)
        by_length.setdefault(task.seq_len, []).append(instances)
    return [(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])) for parts in by_length.values()]


def task_loss(model: LanguageModel, batches: list[tuple[torch.Tensor, torch.Tensor]],
              device: torch.device) -> torch.Tensor:
    """Mean cross-entropy over every supervised task position, whichever batch it sits in."""
    total, count = torch.zeros((), device=device), 0
    for inputs, labels in batches:
        loss, _ = model(inputs.to(device), labels.to(device))
        asked = int((labels != IGNORE).sum())
        total, count = total + loss * asked, count + asked
    return total / count


def peak_matmul_flops(device: torch.device, dtype: torch.dtype) -> float:
    """This machine's dense matmul rate in ``dtype``, measured now: the denominator of MFU.

    Measured rather than looked up, so MFU on a shared 2-core box means the share of what the
    cores gave us at that moment, not of a datasheet figure.
    """
    n = 8192 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = math.inf
    for _ in range(4):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def forward_flops(model: LanguageModel, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Matmul FLOPs of one forward pass over ``batches`` (the model's FLOPs, in MFU's sense)."""
    counter = CostCounter()
    with torch.no_grad(), counter:
        for inputs, labels in batches:
            model(inputs, labels)
    return counter.flops


def train(
    model: LanguageModel,
    profile: Profile,
    seed: int,
    train_tokens: np.ndarray,
    report: Callable[[dict], None],
) -> tuple[AdamW, dict, dict[str, float]]:
    """Train in place; return the optimizer, the run's figures (time, throughput, MFU, last loss) and
    the seconds spent on setup, on text rows, on task rows and in the optimizer.

    Text rows and task rows are separate graphs, so each is backpropagated as soon as it is built:
    the gradients are the sum's, the two halves can be timed apart, and the text graph is freed
    before the task graph is built. (On CUDA the split is only approximate: nothing synchronises.)
    """
    setup_started = time.perf_counter()
    device = torch.device(profile.device)
    dtype = getattr(torch, profile.dtype)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(model, profile)
    tokens_per_step = profile.batch_size * profile.seq_len + sum(t.rows * t.seq_len for t in profile.tasks)
    # A step's cost: forward FLOPs counted on sample batches, backward taken as twice the forward.
    sample = torch.Generator().manual_seed(seed)
    text = text_batch(train_tokens, profile.batch_size, profile.seq_len, sample).to(device)
    batches = [(text[:, :-1], text[:, 1:])] + [(x.to(device), y.to(device)) for x, y in task_batches(profile, sample)]
    with autocast:
        flops_per_step = 3 * forward_flops(model, batches)
    peak = peak_matmul_flops(device, dtype)
    model.train()
    started = time.perf_counter()
    seconds = {"train_setup": started - setup_started, "train_text": 0.0, "train_tasks": 0.0, "train_optimizer": 0.0}
    window_start, window_steps = started, 0
    loss_value = float("nan")
    for step in range(profile.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, profile)

        step_started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        text = text_batch(train_tokens, profile.batch_size, profile.seq_len, generator).to(device)
        with autocast:
            text_loss, _ = model(text[:, :-1], text[:, 1:])
        text_loss.backward()
        text_done = time.perf_counter()
        with autocast:
            tasks_loss = task_loss(model, task_batches(profile, generator), device)
        tasks_loss.backward()
        tasks_done = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), profile.grad_clip)
        optimizer.step()
        seconds["train_text"] += text_done - step_started
        seconds["train_tasks"] += tasks_done - text_done
        seconds["train_optimizer"] += time.perf_counter() - tasks_done

        window_steps += 1
        if (step + 1) % profile.log_every == 0 or step + 1 == profile.steps:
            loss = text_loss.detach() + tasks_loss.detach()
            loss_value = loss.item()  # syncs with the device: only when logging
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"training loss became {loss_value} at step {step + 1}")
            now = time.perf_counter()
            report({
                "step": step + 1,
                "steps": profile.steps,
                "train_loss": loss_value,
                "text_loss": text_loss.item(),
                "task_loss": tasks_loss.item(),
                "tokens_per_s": window_steps * tokens_per_step / (now - window_start),
                "mfu": window_steps * flops_per_step / (now - window_start) / peak,
            })
            window_start, window_steps = now, 0
    elapsed = time.perf_counter() - started
    return optimizer, {
        "train_seconds": elapsed,
        "tokens_per_s": profile.steps * tokens_per_step / elapsed,
        "flops_per_token": flops_per_step / tokens_per_step,
        "peak_flops": peak,
        "mfu": profile.steps * flops_per_step / elapsed / peak,
        "train_loss": loss_value,
    }, seconds


@torch.no_grad()
def evaluate(model: LanguageModel, profile: Profile, val_tokens: np.ndarray) -> tuple[dict, dict[str, float]]:
    """Validation loss (nats per byte) on held-out text, and accuracy on held-out task instances;
    and the seconds each took."""
    started = time.perf_counter()
    device = torch.device(profile.device)
    dtype = getattr(torch, profile.dtype)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    model.eval()
    losses = []
    for batch in validation_batches(val_tokens, profile.eval_batches, profile.batch_size, profile.seq_len):
        batch = batch.to(device)
        with autocast:
            loss, _ = model(batch[:, :-1], batch[:, 1:])
        losses.append(loss.item())
    text_done = time.perf_counter()
    benchmarks = {}
    for index, task in enumerate(profile.tasks):
        generator = torch.Generator().manual_seed(EVAL_SEED - index)
        inputs, labels = make_instances(task, profile.task_vocabulary, profile.eval_task_instances, generator)
        correct = total = 0
        for rows in range(0, len(inputs), 64):
            x, y = inputs[rows : rows + 64].to(device), labels[rows : rows + 64].to(device)
            with autocast:
                _, logits = model(x, y)
            correct += (logits.argmax(dim=-1) == y[y != IGNORE]).sum().item()
            total += int((y != IGNORE).sum())
        benchmarks[task.name] = correct / total
    model.train()
    return {
        "val_loss": sum(losses) / len(losses),
        "benchmarks": benchmarks,
        "benchmark_mean": sum(benchmarks.values()) / len(benchmarks),
    }, {"eval_text": text_done - started, "eval_tasks": time.perf_counter() - text_done}
