"""Synthetic capability tasks: MQAR (Zoology) and selective copying and noisy recall (MAD).

Each generator returns ``(inputs, labels)`` of shape ``[n, seq_len]`` with ``labels == IGNORE``
wherever nothing is supervised: a task is scored only where it asks something.

Token layout (shared with the text): ids 0-255 are bytes, the next ``task_vocab`` ids are task
tokens (first half keys, second half values), then a BLANK and a COPY marker.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100  # cross_entropy's ignore_index
BYTES = 256
MQAR_POWER_A = 0.01  # Zoology's default: query gaps follow a power law, most queries near their pair
RECALL_NOISE_P = 0.25  # noisy recall: chance that a slot holds a noise byte instead of a pair


@dataclass(frozen=True)
class TaskSpec:
    seq_len: int
    task_vocab: int
    mqar_kv_pairs: int
    copy_tokens: int
    recall_keys: int

    @property
    def keys(self) -> tuple[int, int]:
        return BYTES, BYTES + self.task_vocab // 2

    @property
    def values(self) -> tuple[int, int]:
        return BYTES + self.task_vocab // 2, BYTES + self.task_vocab

    @property
    def blank(self) -> int:
        return BYTES + self.task_vocab

    @property
    def copy(self) -> int:
        return BYTES + self.task_vocab + 1


def _distinct(n: int, k: int, low: int, high: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` distinct ids from ``[low, high)`` per row: ``[n, k]``."""
    return torch.rand(n, high - low, generator=generator).argsort(dim=-1)[:, :k] + low


def mqar(spec: TaskSpec, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-query associative recall, as Zoology's ``multiquery_ar``.

    ``k1 v1 k2 v2 ...`` then the keys again at power-law gaps among random tokens; at each
    queried key the model must output its value.  Keys and values come from separate halves
    of the task vocabulary and only query positions are supervised.
    """
    pairs, seq_len = spec.mqar_kv_pairs, spec.seq_len
    context = 2 * pairs
    keys = _distinct(n, pairs, *spec.keys, generator)
    values = _distinct(n, pairs, *spec.values, generator)
    space = (seq_len - context) // 2
    ranks = torch.arange(1, space + 1, dtype=torch.float64)
    weights = (MQAR_POWER_A * ranks ** (MQAR_POWER_A - 1)).expand(n, space)
    gaps = torch.multinomial(weights, pairs, replacement=False, generator=generator)  # [n, pairs]
    inputs = torch.randint(BYTES, BYTES + spec.task_vocab, (n, seq_len), generator=generator)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values
    query_positions = context + 2 * gaps
    inputs.scatter_(1, query_positions, keys)
    labels = torch.full((n, seq_len), IGNORE)
    labels.scatter_(1, query_positions, values)
    return inputs, labels


def selective_copying(spec: TaskSpec, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective copying, as in MAD: copy the scattered content tokens, in order, past the blanks.

    The first ``seq_len - copy_tokens`` positions are blanks with ``copy_tokens`` content tokens
    at random places; then come ``copy_tokens`` COPY markers, at the i-th of which the model
    must output the i-th content token.
    """
    count, seq_len = spec.copy_tokens, spec.seq_len
    area = seq_len - count
    content = torch.randint(BYTES, BYTES + spec.task_vocab, (n, count), generator=generator)
    places = _distinct(n, count, 0, area, generator).sort(dim=-1).values
    inputs = torch.full((n, seq_len), spec.blank)
    inputs.scatter_(1, places, content)
    inputs[:, area:] = spec.copy
    labels = torch.full((n, seq_len), IGNORE)
    labels[:, area:] = content
    return inputs, labels


def noisy_recall(spec: TaskSpec, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy in-context recall, as in MAD: key-value pairs recur, noise tokens fall between them.

    Each instance draws a mapping of ``recall_keys`` keys to values and writes a stream of
    ``key value`` pairs, with noise bytes (a vocabulary disjoint from keys and values) in
    some slots.  At every key seen before, the model must output its value; first sightings
    and noise are not supervised.
    """
    seq_len, n_keys = spec.seq_len, spec.recall_keys
    keys = _distinct(n, n_keys, *spec.keys, generator)
    values = _distinct(n, n_keys, *spec.values, generator)
    inputs = torch.empty((n, seq_len), dtype=torch.long)
    labels = torch.full((n, seq_len), IGNORE)
    noise = torch.rand(n, seq_len, generator=generator) < RECALL_NOISE_P
    noise_bytes = torch.randint(0, BYTES, (n, seq_len), generator=generator)
    choice = torch.randint(0, n_keys, (n, seq_len), generator=generator)
    for row in range(n):
        seen: set[int] = set()
        t = 0
        while t < seq_len:
            if noise[row, t] or t == seq_len - 1:
                inputs[row, t] = noise_bytes[row, t]
                t += 1
                continue
            which = int(choice[row, t])
            inputs[row, t], inputs[row, t + 1] = keys[row, which], values[row, which]
            if which in seen:
                labels[row, t] = values[row, which]
            seen.add(which)
            t += 2
    return inputs, labels


TASKS = {"mqar": mqar, "selective_copying": selective_copying, "noisy_recall": noisy_recall}
