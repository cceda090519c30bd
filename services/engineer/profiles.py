"""Named training profiles: how big a model the engineer trains, on what, for how long.

A profile fixes everything about an experiment except the candidate mixer and the seed, so
two results under the same profile are comparable.  ``tiny`` is for tests and CI (seconds),
``cpu`` is the default search scale on a 2-core machine (a minute or two per experiment),
``gpu-20m`` is the paper's exploration scale and ``gpu-340m`` its verification scale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from services.engineer.tasks import Task, TaskVocabulary


@dataclass(frozen=True)
class Profile:
    name: str
    # Model shape.
    d_model: int
    n_layers: int
    n_heads: int
    # Text: byte-level language modelling on the corpus.
    seq_len: int
    batch_size: int  # text rows per step
    # Capability tasks, trained alongside the text as a multi-task mixture.
    task_vocab: int  # task tokens (ids after the 256 bytes), split between keys and values
    tasks: tuple[Task, ...]
    # Optimisation: AdamW, linear warm-up then cosine decay to min_lr.
    steps: int
    lr: float
    min_lr: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    # Evaluation.
    eval_batches: int  # held-out text batches for the validation loss
    eval_task_instances: int  # held-out instances per capability task
    log_every: int  # steps between progress reports
    # Where and within which limits.
    device: str
    dtype: str  # autocast dtype of the forward pass; the weights and optimizer stay in float32
    threads: int  # torch intra-op threads; 0 means every core this process may use
    timeout_s: float  # wall clock for the whole sandboxed experiment (probes included)
    memory_mb: int | None  # address-space limit of the sandbox; None where CUDA needs a huge one
    seeds: tuple[int, ...]  # the seeds baselines and replications are run with

    def __post_init__(self) -> None:
        assert self.d_model % self.n_heads == 0, "d_model must split evenly into heads"
        assert self.task_vocab % 2 == 0, "task vocabulary splits into key and value halves"
        assert all(2 * task.symbols <= self.task_vocab for task in self.tasks), "a tier outgrows the vocabulary"
        assert len({task.name for task in self.tasks}) == len(self.tasks), "task names must be unique"
        # The tier that separates families (Zoology): more pairs than one head's key dimension.
        head_dim = self.d_model // self.n_heads
        assert any(t.kind == "mqar" and t.size > head_dim for t in self.tasks), "no hard MQAR tier"
        assert 0 < self.warmup_steps < self.steps

    @property
    def task_vocabulary(self) -> TaskVocabulary:
        return TaskVocabulary(self.task_vocab)

    @property
    def vocab_size(self) -> int:
        """256 byte tokens, then the task tokens, then two task markers (blank, copy)."""
        return 256 + self.task_vocab + 2


EXPLORE = Profile(
    name="explore",
    # The search's scale on 2 cores: the width, depth and tasks of ``cpu`` (so a mixer's
    # parameter budget and its capability tiers are the ones it is promoted on), on shorter
    # text and fewer steps. The README measures whether it ranks the baselines as ``cpu`` does.
    d_model=128,
    n_layers=2,
    n_heads=2,
    seq_len=128,
    batch_size=6,
    task_vocab=160,
    tasks=(
        Task("mqar", "mqar", seq_len=64, size=4, symbols=16, rows=12),
        Task("mqar_hard", "mqar", seq_len=288, size=72, symbols=80, rows=2),
        Task("selective_copying", "selective_copying", seq_len=64, size=4, symbols=16, rows=12),
        Task("noisy_recall", "noisy_recall", seq_len=64, size=4, symbols=16, rows=12),
    ),
    steps=120,
    lr=3e-3,
    min_lr=3e-4,
    warmup_steps=10,
    weight_decay=0.1,
    grad_clip=1.0,
    eval_batches=8,
    eval_task_instances=128,
    log_every=10,
    device="cpu",
    dtype="float32",
    threads=0,
    timeout_s=600.0,
    memory_mb=8192,
    seeds=(0, 1),
)

PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        d_model=64,  # smallest width at which every baseline still learns something
        n_layers=2,  # two layers: the least depth at which induction-style recall can form
        n_heads=2,  # head dim 32, like the paper's per-head key dimension at small scale
        seq_len=128,  # long enough for the chunked kernels to use more than one chunk
        batch_size=8,  # 1K text tokens per step keeps a step near 40 ms on 2 cores
        task_vocab=80,
        tasks=(  # short task sequences: the test suite only needs the pipeline to work
            Task("mqar", "mqar", seq_len=64, size=4, symbols=16, rows=4),
            Task("mqar_hard", "mqar", seq_len=144, size=36, symbols=40, rows=2),  # 36 pairs > head dim 32
            Task("selective_copying", "selective_copying", seq_len=64, size=4, symbols=16, rows=4),
            Task("noisy_recall", "noisy_recall", seq_len=64, size=4, symbols=16, rows=4),
        ),
        steps=60,  # the whole experiment in ~10-20 s on a loaded 2-core box, as the test suite needs
        lr=3e-3,  # small models tolerate (and need) a high rate to move in 60 steps
        min_lr=3e-4,
        warmup_steps=6,
        weight_decay=0.1,
        grad_clip=1.0,
        eval_batches=4,
        eval_task_instances=64,
        log_every=10,
        device="cpu",
        dtype="float32",  # CPUs gain little from bf16 matmuls and lose accuracy
        threads=1,  # tests run beside other work: one thread never spins waiting on a descheduled sibling
        timeout_s=180.0,  # generous for a loaded CI box; a healthy run takes a tenth of it
        memory_mb=6144,  # torch's import alone maps ~2 GB of address space
        seeds=(0, 1),
    ),
    "cpu": Profile(
        name="cpu",
        d_model=128,  # the scale FIELD-NOTES measured: ranks linear < DeltaNet < Mamba2 < GDN
        n_layers=2,
        n_heads=2,
        seq_len=256,
        batch_size=12,
        task_vocab=160,
        # The easy tiers are sized so that the budget can learn them: with 8 pairs over 128 task
        # tokens and 4 rows per task, every baseline with a decay stayed at chance (a baseline run
        # of commit 2270062); at this size they learn, at rates that differ by family (the README's table).
        # The hard tier holds more pairs than a head's 64 key dimensions can store orthogonally;
        # each row asks 72 questions, so 4 rows per step supervise more positions than 12 easy rows.
        tasks=(
            Task("mqar", "mqar", seq_len=64, size=4, symbols=16, rows=12),
            Task("mqar_hard", "mqar", seq_len=288, size=72, symbols=80, rows=4),
            Task("selective_copying", "selective_copying", seq_len=64, size=4, symbols=16, rows=12),
            Task("noisy_recall", "noisy_recall", seq_len=64, size=4, symbols=16, rows=12),
        ),
        steps=250,  # ~1.3M tokens: about two minutes per experiment on 2 cores
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=20,
        weight_decay=0.1,
        grad_clip=1.0,
        eval_batches=16,
        eval_task_instances=256,
        log_every=10,
        device="cpu",
        dtype="float32",  # CPUs gain little from bf16 matmuls and lose accuracy
        threads=0,
        timeout_s=900.0,
        memory_mb=8192,
        seeds=(0, 1),
    ),
    "explore": EXPLORE,
    # ``explore`` trained for ``cpu``'s 250 steps. Gated designs that learn to recall do so
    # after step 120: at ``explore`` they look like Gated DeltaNet, and the search could not
    # see them (runs/diagnostics/README.md). About twice ``explore``'s cost, half of ``cpu``'s.
    "explore-long": dataclasses.replace(EXPLORE, name="explore-long", steps=250, warmup_steps=20),
    "gpu-20m": Profile(
        name="gpu-20m",
        d_model=512,  # 8 layers of 512 with a 2x MLP: 17-20M parameters, the paper's exploration size
        n_layers=8,
        n_heads=8,  # head dim 64, as in the paper's models
        seq_len=2048,
        batch_size=32,
        task_vocab=512,
        tasks=(
            Task("mqar", "mqar", seq_len=256, size=32, symbols=256, rows=16),
            Task("mqar_hard", "mqar", seq_len=512, size=96, symbols=256, rows=16),  # 96 pairs > head dim 64
            Task("selective_copying", "selective_copying", seq_len=512, size=32, symbols=256, rows=16),
            Task("noisy_recall", "noisy_recall", seq_len=512, size=32, symbols=256, rows=16),
        ),
        steps=4000,  # ~260M text tokens (many epochs of the default corpus; name a larger one)
        lr=1e-3,
        min_lr=1e-4,
        warmup_steps=200,
        weight_decay=0.1,
        grad_clip=1.0,
        eval_batches=64,
        eval_task_instances=1024,
        log_every=50,
        device="cuda",
        dtype="bfloat16",  # tensor cores: bf16 matmuls run ~15x the fp32 rate
        threads=0,
        timeout_s=6 * 3600.0,
        memory_mb=None,  # CUDA reserves terabytes of address space; the pod's cgroup bounds memory
        seeds=(0, 1, 2),
    ),
    "gpu-340m": Profile(
        name="gpu-340m",
        d_model=1280,  # 26 layers of 1280 with a 2x MLP: about 340M parameters, the verification size
        n_layers=26,
        n_heads=10,  # head dim 128, as the Gated DeltaNet paper's larger models
        seq_len=2048,
        batch_size=64,
        task_vocab=1024,
        tasks=(
            Task("mqar", "mqar", seq_len=512, size=64, symbols=512, rows=16),
            Task("mqar_hard", "mqar", seq_len=1024, size=192, symbols=512, rows=16),  # 192 pairs > head dim 128
            Task("selective_copying", "selective_copying", seq_len=1024, size=64, symbols=512, rows=16),
            Task("noisy_recall", "noisy_recall", seq_len=1024, size=64, symbols=512, rows=16),
        ),
        steps=20000,
        lr=6e-4,
        min_lr=6e-5,
        warmup_steps=1000,
        weight_decay=0.1,
        grad_clip=1.0,
        eval_batches=128,
        eval_task_instances=2048,
        log_every=100,
        device="cuda",
        dtype="bfloat16",  # tensor cores: bf16 matmuls run ~15x the fp32 rate
        threads=0,
        timeout_s=72 * 3600.0,
        memory_mb=None,
        seeds=(0, 1, 2),
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}") from None
