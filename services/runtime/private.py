"""Folders only their owner may open: what a data dir holds (the log's store, checkpoints, the
corpus splits, cached results, credentials) is no business of the user candidate code runs as."""

from __future__ import annotations

from pathlib import Path


def private_folder(path: Path) -> Path:
    """``path``, made if missing, with mode 0700 (the parents it makes too). A folder of someone
    else's (a volume's root in a pod) keeps its mode: what we make inside it is still private."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for folder in [path, *missing]:
        try:
            folder.chmod(0o700)
        except PermissionError:
            pass
    return path
