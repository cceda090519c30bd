"""Synthetic capability tasks: MQAR (Zoology) and selective copying and noisy recall (MAD).

A profile lists its tasks as ``Task`` tiers (one generator, one size), so the same generator
can appear twice: an easy MQAR tier and a hard one with more pairs than a head's key dimension.
Each generator returns ``(inputs, labels)`` of shape ``[n, seq_len]`` with ``labels == IGNORE``
wherever nothing is supervised: a task is scored only where it asks something.

Token layout (shared with the text): ids 0-255 are bytes, the next ``task_vocab`` ids are task
tokens (first half keys, second half values), then a BLANK and a COPY marker.  A tier draws
its keys and values from the first ``symbols`` ids of each half.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

IGNORE = -100  # cross_entropy's ignore_index
BYTES = 256
MQAR_POWER_A = 0.01  # Zoology's default: query gaps follow a power law, most queries near their pair
RECALL_NOISE_P = 0.25  # noisy recall: chance that a slot holds a noise byte instead of a pair


@dataclass(frozen=True)
class Task:
    """One capability tier: which generator, over how long a sequence, and how hard."""

    name: str  # the key its accuracy is reported under
    kind: str  # a generator in GENERATORS
    seq_len: int
    size: int  # MQAR: key-value pairs; selective copying: tokens to copy; noisy recall: distinct keys
    symbols: int  # distinct keys (and as many values) the tier draws from
    rows: int  # training rows per step

    def __post_init__(self) -> None:
        assert self.kind in GENERATORS, f"unknown task kind {self.kind!r}"
        assert self.size <= self.symbols, "a tier needs at least as many symbols as keys"
        if self.kind == "mqar":  # Zoology: the context, then one query per pair in the space after it
            assert 4 * self.size <= self.seq_len, "MQAR needs 2 tokens per pair and 2 per query slot"
        else:
            assert 2 * self.size <= self.seq_len, "the task's prompt must fit the sequence"


@dataclass(frozen=True)
class TaskVocabulary:
    """Where task tokens sit after the 256 bytes: keys, then values, then the two markers."""

    size: int

    def keys(self, symbols: int) -> tuple[int, int]:
        return BYTES, BYTES + symbols

    def values(self, symbols: int) -> tuple[int, int]:
        return BYTES + self.size // 2, BYTES + self.size // 2 + symbols

    @property
    def blank(self) -> int:
        return BYTES + self.size

    @property
    def copy(self) -> int:
        return BYTES + self.size + 1


Generator = Callable[[Task, TaskVocabulary, int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def _distinct(n: int, k: int, low: int, high: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` distinct ids from ``[low, high)`` per row: ``[n, k]``."""
    return torch.rand(n, high - low, generator=generator).argsort(dim=-1)[:, :k] + low


def mqar(task: Task, vocab: TaskVocabulary, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-query associative recall, as Zoology's ``multiquery_ar``.

    ``k1 v1 k2 v2 ...`` then the keys again at power-law gaps among random tokens; at each
    queried key the model must output its value.  Keys and values come from separate halves
    of the task vocabulary and only query positions are supervised.
    """
    pairs, seq_len = task.size, task.seq_len
    context = 2 * pairs
    keys = _distinct(n, pairs, *vocab.keys(task.symbols), generator)
    values = _distinct(n, pairs, *vocab.values(task.symbols), generator)
    space = (seq_len - context) // 2
    ranks = torch.arange(1, space + 1, dtype=torch.float64)
    weights = (MQAR_POWER_A * ranks ** (MQAR_POWER_A - 1)).expand(n, space)
    gaps = torch.multinomial(weights, pairs, replacement=False, generator=generator)  # [n, pairs]
    inputs = torch.randint(BYTES, BYTES + vocab.size, (n, seq_len), generator=generator)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values
    query_positions = context + 2 * gaps
    inputs.scatter_(1, query_positions, keys)
    labels = torch.full((n, seq_len), IGNORE)
    labels.scatter_(1, query_positions, values)
    return inputs, labels


def selective_copying(task: Task, vocab: TaskVocabulary, n: int,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective copying, as in MAD: copy the scattered content tokens, in order, past the blanks.

    The first ``seq_len - size`` positions are blanks with ``size`` content tokens (drawn from
    the tier's keys and values) at random places; then come ``size`` COPY markers, at the i-th
    of which the model must output the i-th content token.
    """
    count, seq_len = task.size, task.seq_len
    area = seq_len - count
    pick = torch.randint(0, 2 * task.symbols, (n, count), generator=generator)
    key_low, value_low = vocab.keys(task.symbols)[0], vocab.values(task.symbols)[0]
    content = torch.where(pick < task.symbols, key_low + pick, value_low + pick - task.symbols)
    places = _distinct(n, count, 0, area, generator).sort(dim=-1).values
    inputs = torch.full((n, seq_len), vocab.blank)
    inputs.scatter_(1, places, content)
    inputs[:, area:] = vocab.copy
    labels = torch.full((n, seq_len), IGNORE)
    labels[:, area:] = content
    return inputs, labels


def noisy_recall(task: Task, vocab: TaskVocabulary, n: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy in-context recall, as in MAD: key-value pairs recur, noise tokens fall between them.

    Each instance draws a mapping of ``size`` keys to values and writes a stream of
    ``key value`` pairs, with noise bytes (a vocabulary disjoint from keys and values) in
    some slots.  At every key seen before, the model must output its value; first sightings
    and noise are not supervised.
    """
    seq_len, n_keys = task.seq_len, task.size
    keys = _distinct(n, n_keys, *vocab.keys(task.symbols), generator)
    values = _distinct(n, n_keys, *vocab.values(task.symbols), generator)
    noise = (torch.rand(n, seq_len, generator=generator) < RECALL_NOISE_P).tolist()
    noise_bytes = torch.randint(0, BYTES, (n, seq_len), generator=generator).tolist()
    choice = torch.randint(0, n_keys, (n, seq_len), generator=generator).tolist()
    # The walk is sequential (a pair takes two slots, noise one), so it runs on Python lists: indexing
    # tensors element by element cost a few milliseconds per training step.
    inputs, labels = noise_bytes, [[IGNORE] * seq_len for _ in range(n)]
    for row_keys, row_values, row_noise, row_choice, row_inputs, row_labels in zip(
            keys.tolist(), values.tolist(), noise, choice, inputs, labels, strict=True):
        seen: set[int] = set()
        t = 0
        while t < seq_len:
            if row_noise[t] or t == seq_len - 1:
                t += 1  # the slot keeps its noise byte
                continue
            which = row_choice[t]
            row_inputs[t], row_inputs[t + 1] = row_keys[which], row_values[which]
            if which in seen:
                row_labels[t] = row_values[which]
            seen.add(which)
            t += 2
    return torch.tensor(inputs), torch.tensor(labels)


GENERATORS: dict[str, Generator] = {"mqar": mqar, "selective_copying": selective_copying, "noisy_recall": noisy_recall}


def make_instances(task: Task, vocab: TaskVocabulary, n: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return GENERATORS[task.kind](task, vocab, n, generator)
