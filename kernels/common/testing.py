"""Random, well-conditioned inputs and gradient comparisons, shared by the tests and the benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

Inputs = dict[str, torch.Tensor | None]

# float32 round-off through a few hundred steps stays near 1e-6 relative; 1e-4 leaves room without hiding bugs.
RELATIVE_TOLERANCE = 1e-4


def make_inputs(
    op: str,
    B: int,
    T: int,
    H: int,
    K: int,
    V: int,
    gate: str | None = None,
    with_initial_state: bool = False,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Inputs:
    """Fresh random leaf tensors for `op` ("linear_attn", "delta_rule" or "gated_delta_rule").

    Keys are l2-normalised (the delta rule needs ||k|| = 1 to stay contractive), beta spans (0, 2)
    so negative eigenvalues are exercised, and log-decays follow the papers' gates (logsigmoid),
    kept away from zero so that decay matters. gate: None, "scalar" ([B, T, H]) or "vector"
    ([B, T, H, K]); ignored by the delta rule, always "scalar" for the gated delta rule.
    """

    def leaf(x: torch.Tensor) -> torch.Tensor:
        return x.to(device=device, dtype=dtype).requires_grad_()

    inputs: Inputs = {
        "q": leaf(torch.randn(B, T, H, K)),
        "k": leaf(F.normalize(torch.randn(B, T, H, K), dim=-1)),
        "v": leaf(torch.randn(B, T, H, V)),
    }
    if op == "gated_delta_rule":
        gate = "scalar"
    if op != "delta_rule" and gate is not None:
        shape = (B, T, H) if gate == "scalar" else (B, T, H, K)
        inputs["g"] = leaf(F.logsigmoid(torch.randn(shape) + 2.0))
    elif op == "linear_attn":
        inputs["g"] = None
    if op != "linear_attn":
        inputs["beta"] = leaf(torch.rand(B, T, H) * 1.98 + 0.01)
    inputs["initial_state"] = leaf(torch.randn(B, H, K, V) * 0.5) if with_initial_state else None
    return inputs


def forward_backward(
    fn: Callable[..., tuple[torch.Tensor, torch.Tensor | None]],
    inputs: Inputs,
    grad_o: torch.Tensor,
    grad_final_state: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Run `fn(**inputs, output_final_state=True)` and backpropagate the given output gradients.

    Returns "o", "final_state" and "d<name>" for every input that requires a gradient.
    """
    o, final_state = fn(**inputs, output_final_state=True)
    leaves = {name: x for name, x in inputs.items() if x is not None and x.requires_grad}
    loss = (o.float() * grad_o).sum() + (final_state.float() * grad_final_state).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    result = {"o": o.detach(), "final_state": final_state.detach()}
    result.update({f"d{name}": grad for name, grad in zip(leaves, grads, strict=True)})
    return result


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Root-mean-square error relative to the root-mean-square of `expected`; inf when not finite."""
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    if not torch.isfinite(actual).all():
        return float("inf")
    return ((actual - expected).pow(2).mean().sqrt() / expected.pow(2).mean().sqrt().clamp_min(1e-12)).item()


def compare(
    candidate: Callable[..., tuple[torch.Tensor, torch.Tensor | None]],
    reference: Callable[..., tuple[torch.Tensor, torch.Tensor | None]],
    inputs: Inputs,
) -> dict[str, float]:
    """Relative error of `candidate` against `reference` for the output, final state and every gradient."""
    o, final_state = reference(**inputs, output_final_state=True)
    grad_o, grad_final_state = torch.randn_like(o.float()), torch.randn_like(final_state.float())
    expected = forward_backward(reference, inputs, grad_o, grad_final_state)
    actual = forward_backward(candidate, inputs, grad_o, grad_final_state)
    return {name: relative_error(actual[name], expected[name]) for name in expected}


def assert_all_close(errors: dict[str, float], tolerance: float = RELATIVE_TOLERANCE) -> None:
    """Every relative error is under `tolerance`; NaN and inf never pass."""
    failing = {name: error for name, error in errors.items() if not error < tolerance}
    assert not failing, f"relative errors over {tolerance}: {failing} (all: {errors})"


def interpreted_triton_errors(
    cases: dict[str, list[tuple[str, int, bool, str | None, int]]],
) -> dict[str, list[dict[str, float]]]:
    """Relative errors of each op's Triton implementations against naive, under TRITON_INTERPRET=1.

    cases: op -> (form, T, with_initial_state, gate, V) tuples, form "chunk" or "recurrent"; V over
    32 spans several value blocks. The interpreter must be switched on before Triton is first
    imported, so the comparisons run in one fresh Python process, at toy sizes (B=1, H=1, K=16).
    """
    script = (
        "import json, torch\n"
        "from kernels.common.testing import compare, make_inputs\n"
        "from kernels.dispatch import implementation\n"
        "torch.set_num_threads(1)\n"
        "errors = {}\n"
        f"for op, op_cases in {cases!r}.items():\n"
        "    naive = implementation(op, 'chunk', 'naive')\n"
        "    errors[op] = []\n"
        "    for form, T, with_initial_state, gate, V in op_cases:\n"
        "        inputs = make_inputs(op, 1, T, 1, 16, V, gate=gate, with_initial_state=with_initial_state)\n"
        "        errors[op].append(compare(implementation(op, form, 'triton'), naive, inputs))\n"
        "print(json.dumps(errors))\n"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    repo_root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root), env.get("PYTHONPATH")]))
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    if finished.returncode != 0:
        raise RuntimeError(f"interpreted Triton run failed:\n{finished.stderr[-4000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def compile_for_cuda(
    kernel: Any,
    constexprs: dict[str, int | bool],
    scalars: dict[str, str],
    bf16_pointers: tuple[str, ...] = (),
    num_warps: int = 4,
    num_stages: int = 3,
    capability: int = 90,
) -> int:
    """Compile a Triton kernel to a cubin for an NVIDIA GPU of `capability`, without a GPU.

    Triton's bundled ptxas runs offline, so this catches what the interpreter cannot: code that only
    the real compiler rejects, and blocks that ask for more shared memory than a GPU has. Pointers are
    float32 unless named in `bf16_pointers`; scalars maps names to Triton types ("i32", "fp32").
    Returns the shared memory the kernel needs, in bytes.
    """
    from triton import compile as triton_compile
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = {}
    for name in kernel.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        else:
            signature[name] = scalars.get(name, "*bf16" if name in bf16_pointers else "*fp32")
    positions = {(kernel.arg_names.index(name),): value for name, value in constexprs.items()}
    source = ASTSource(kernel, signature, constexprs=positions)
    options = {"num_warps": num_warps, "num_stages": num_stages}
    compiled = triton_compile(source, target=GPUTarget("cuda", capability, 32), options=options)
    return compiled.metadata.shared
