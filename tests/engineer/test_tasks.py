"""The capability tasks ask what their papers ask, and the corpus split holds files out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from services.engineer.data import prepare_corpus, validation_batches
from services.engineer.profiles import PROFILES
from services.engineer.tasks import BYTES, IGNORE, Task, TaskVocabulary, mqar, noisy_recall, selective_copying

VOCAB = TaskVocabulary(64)
MQAR = Task("mqar", "mqar", seq_len=64, size=8, symbols=24, rows=1)
COPY = Task("selective_copying", "selective_copying", seq_len=64, size=6, symbols=8, rows=1)
RECALL = Task("noisy_recall", "noisy_recall", seq_len=64, size=4, symbols=24, rows=1)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_mqar_supervises_only_queries_and_each_answer_is_the_value_stored_under_the_key() -> None:
    inputs, labels = mqar(MQAR, VOCAB, 32, generator())
    keys_low, keys_high = VOCAB.keys(MQAR.symbols)
    values_low, values_high = VOCAB.values(MQAR.symbols)
    assert keys_high <= values_low  # the halves do not overlap
    for row_inputs, row_labels in zip(inputs.tolist(), labels.tolist(), strict=True):
        context = dict(zip(row_inputs[0:16:2], row_inputs[1:16:2], strict=True))
        assert all(keys_low <= k < keys_high for k in context)  # keys from one half...
        assert all(values_low <= v < values_high for v in context.values())  # ...values from the other
        asked = [(t, label) for t, label in enumerate(row_labels) if label != IGNORE]
        assert len(asked) == MQAR.size
        for t, label in asked:
            assert t >= 16 and context[row_inputs[t]] == label


def test_mqar_queries_come_mostly_soon_after_the_context() -> None:
    _, labels = mqar(Task("mqar", "mqar", seq_len=256, size=8, symbols=32, rows=1), VOCAB, 256, generator())
    positions = (labels != IGNORE).nonzero()[:, 1].float()
    # Zoology's power law puts most queries early in the query region (uniform would give ~136).
    assert positions.median() < 110


def test_selective_copying_asks_for_the_scattered_tokens_in_order_at_the_copy_markers() -> None:
    inputs, labels = selective_copying(COPY, VOCAB, 16, generator())
    area = COPY.seq_len - COPY.size
    allowed = set(range(*VOCAB.keys(COPY.symbols))) | set(range(*VOCAB.values(COPY.symbols)))
    drawn: set[int] = set()
    for row_inputs, row_labels in zip(inputs.tolist(), labels.tolist(), strict=True):
        content = [token for token in row_inputs[:area] if token != VOCAB.blank]
        assert row_inputs[area:] == [VOCAB.copy] * COPY.size
        assert row_labels[area:] == content and set(row_labels[:area]) == {IGNORE}
        drawn |= set(content)
    assert drawn <= allowed and len(drawn) > COPY.symbols  # from the tier's keys and its values


def test_noisy_recall_asks_only_about_keys_seen_before_and_noise_is_never_a_key() -> None:
    inputs, labels = noisy_recall(RECALL, VOCAB, 16, generator())
    asked = 0
    for row_inputs, row_labels in zip(inputs.tolist(), labels.tolist(), strict=True):
        stored: dict[int, int] = {}
        t = 0
        while t < len(row_inputs):
            token = row_inputs[t]
            if token < BYTES:  # noise: a byte, outside the key and value vocabularies
                assert row_labels[t] == IGNORE
                t += 1
                continue
            value = row_inputs[t + 1]
            if token in stored:
                assert row_labels[t] == stored[token] == value
                asked += 1
            else:
                assert row_labels[t] == IGNORE
            stored[token] = value
            t += 2
    assert asked > 0


def test_held_out_instances_differ_from_training_ones() -> None:
    train_inputs, _ = mqar(MQAR, VOCAB, 64, generator(0))
    held_out, _ = mqar(MQAR, VOCAB, 64, generator(2**31 - 1))
    assert not (train_inputs[:, None] == held_out[None]).all(-1).any()


def test_every_profile_has_a_hard_mqar_tier_beyond_a_heads_key_dimension() -> None:
    for profile in PROFILES.values():
        head_dim = profile.d_model // profile.n_heads
        hard = [t for t in profile.tasks if t.kind == "mqar" and t.size > head_dim]
        assert hard, profile.name
        for task in hard:
            inputs, labels = mqar(task, profile.task_vocabulary, 2, generator())
            assert inputs.shape == (2, task.seq_len) and int((labels[0] != IGNORE).sum()) == task.size
            assert int(inputs.max()) < profile.vocab_size


def test_a_profile_without_a_hard_mqar_tier_is_refused() -> None:
    easy_only = tuple(t for t in PROFILES["tiny"].tasks if t.name != "mqar_hard")
    with pytest.raises(AssertionError, match="no hard MQAR tier"):
        dataclasses.replace(PROFILES["tiny"], tasks=easy_only)


def test_a_folder_corpus_is_split_by_file_and_cached(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(60):
        (corpus / f"file{i:02}.txt").write_text(f"<{i:02}>" * 100)
    train_path, val_path = prepare_corpus(corpus, tmp_path / "data")
    train_text, val_text = train_path.read_text(), val_path.read_text()
    held_out = {i for i in range(60) if f"<{i:02}>" in val_text}
    assert held_out and len(held_out) < 20
    assert all(f"<{i:02}>" not in train_text for i in held_out)  # whole files, never a part
    assert prepare_corpus(corpus, tmp_path / "data") == (train_path, val_path)


def test_two_workers_preparing_one_corpus_at_once_both_get_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Two engineers of a fresh run prepare the corpus together. The interleaving that crashed one
    # of them, made certain: the second writes and renames its split between the first's write
    # and its rename.
    text = tmp_path / "book.txt"
    text.write_bytes(bytes(range(256)) * 40)
    rename, interleaved = Path.replace, []

    def replace_after_another_writer(self: Path, target: Path) -> Path:
        if not interleaved:
            interleaved.append(self)
            assert prepare_corpus(text, tmp_path / "data")[0].read_bytes()
        return rename(self, target)

    monkeypatch.setattr(Path, "replace", replace_after_another_writer)
    train_path, val_path = prepare_corpus(text, tmp_path / "data")
    assert interleaved and train_path.read_bytes() + val_path.read_bytes() == text.read_bytes()
    assert sorted(p.name for p in train_path.parent.iterdir()) == ["train.bin", "val.bin"]


def test_a_single_file_corpus_holds_out_its_last_tenth(tmp_path: Path) -> None:
    text = tmp_path / "book.txt"
    text.write_bytes(bytes(range(256)) * 40)
    train_path, val_path = prepare_corpus(text, tmp_path / "data")
    assert train_path.read_bytes() + val_path.read_bytes() == text.read_bytes()
    assert len(val_path.read_bytes()) == len(text.read_bytes()) // 10


def test_validation_windows_are_the_same_for_every_run() -> None:
    tokens = np.arange(10_000, dtype=np.int64).astype(np.uint8)
    first, second = validation_batches(tokens, 3, 4, 32), validation_batches(tokens, 3, 4, 32)
    assert len(first) == 3 and first[0].shape == (4, 33)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
