"""The text corpus: byte-level tokens from a file or folder, split by file into train and validation.

The default corpus is the Python standard library's own ``*.py`` sources, present on every
machine.  Splitting by file (not by offset) keeps whole modules out of training, so the
validation loss measures generalisation to unseen files rather than memorised neighbours.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
import uuid
from pathlib import Path

import numpy as np
import torch

from services.runtime.private import private_folder

VAL_FRACTION = 0.1  # share of files held out, chosen by a hash of the file's relative path


def default_corpus() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def corpus_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"corpus {root} is neither a file nor a folder")
    if root == default_corpus():
        # The stdlib folder also holds the interpreter's site-packages: not the stdlib. Pruned during
        # the walk, not filtered after it: walking site-packages made every experiment's cache check
        # take about a second.
        found = []
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = [name for name in subfolders if name != "site-packages"]
            found += [Path(folder, name) for name in names if name.endswith(".py")]
        return sorted(found)
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def is_validation(relative: str) -> bool:
    digest = hashlib.sha256(relative.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < VAL_FRACTION


def prepare_corpus(corpus: str | os.PathLike | None, cache_dir: Path) -> tuple[Path, Path]:
    """Write ``train.bin`` and ``val.bin`` (uint8) for the corpus once; return their paths.

    A single file is split by offset (its last tenth is validation), a folder by file.
    The cache key covers every file's path, size and mtime, so an edited corpus is rebuilt.
    """
    root = Path(corpus) if corpus is not None else default_corpus()
    root = root.resolve()
    files = corpus_files(root)
    if not files:
        raise FileNotFoundError(f"corpus {root} holds no files")
    key = hashlib.sha256(str(root).encode())
    for path in files:
        stat = path.stat()
        key.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    out = cache_dir / "corpus" / key.hexdigest()[:16]
    train_path, val_path = out / "train.bin", out / "val.bin"
    if train_path.exists() and val_path.exists():
        return train_path, val_path
    if len(files) == 1:
        data = files[0].read_bytes()
        cut = int(len(data) * (1 - VAL_FRACTION))
        train_bytes, val_bytes = data[:cut], data[cut:]
    else:
        train_parts, val_parts = [], []
        for path in files:
            relative = str(path.relative_to(root))
            (val_parts if is_validation(relative) else train_parts).append(path.read_bytes())
        train_bytes, val_bytes = b"".join(train_parts), b"".join(val_parts)
    private_folder(out)
    for path, payload in ((train_path, train_bytes), (val_path, val_bytes)):
        # A file of this writer's own, renamed into place: concurrent workers never read a
        # half-written split, and one worker's rename never takes another's file from under it.
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(payload)
        tmp.replace(path)
    return train_path, val_path


def load_split(path: Path) -> np.ndarray:
    return np.memmap(path, dtype=np.uint8, mode="r")


def text_batch(tokens: np.ndarray, batch_size: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """Random windows of ``seq_len + 1`` bytes: inputs are ``[:, :-1]``, targets ``[:, 1:]``."""
    starts = torch.randint(len(tokens) - seq_len - 1, (batch_size,), generator=generator)
    rows = [torch.from_numpy(tokens[s : s + seq_len + 1].astype(np.int64)) for s in starts.tolist()]
    return torch.stack(rows)


def validation_batches(tokens: np.ndarray, n_batches: int, batch_size: int, seq_len: int) -> list[torch.Tensor]:
    """Evenly spaced windows over the validation split: the same for every seed and candidate."""
    n_windows = n_batches * batch_size
    span = len(tokens) - seq_len - 1
    if span <= 0:
        raise ValueError(f"validation split of {len(tokens)} bytes is shorter than one sequence")
    starts = np.linspace(0, span, n_windows).astype(np.int64)
    rows = torch.stack([torch.from_numpy(tokens[s : s + seq_len + 1].astype(np.int64)) for s in starts])
    return list(rows.split(batch_size))
