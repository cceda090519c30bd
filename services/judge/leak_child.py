"""The sandboxed side of the leak rule's causality re-check: loads a trained checkpoint and
tests the whole language model for causality at its training length.

Runs under the engineer's sandbox (``run_sandboxed(..., child=__name__)``) in the same order as
the engineer's child: limits, then everything that needs the outside world (torch, the
checkpoint, a window of validation text, a warm-up on the trusted reference), then the jail,
and only then the candidate's code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from services.engineer.sandbox_child import (
    CANDIDATE_FILE,
    Channel,
    enter_jail,
    excerpt,
    load_mixer,
    set_limits,
)


def main() -> None:
    scratch, fd = Path(sys.argv[1]), int(sys.argv[2])
    request = json.loads((scratch / "request.json").read_text())
    set_limits(request["limits"])
    channel = Channel(fd)

    import numpy as np
    import torch

    from services.engineer import probes
    from services.engineer.baselines import baseline_code
    from services.engineer.model import LanguageModel, ModelConfig

    torch.set_num_threads(request["threads"])
    import kernels  # noqa: F401 - imported now, while its files are readable
    checkpoint = torch.load(request["checkpoint"], map_location="cpu", weights_only=True)
    length = int(request["length"])
    text = np.fromfile(request["val_path"], dtype=np.uint8, count=length)
    tokens = torch.from_numpy(text.astype(np.int64))[None, :]
    reference = load_mixer(baseline_code("deltanet"), scratch / "deltanet.py")
    warm = LanguageModel(ModelConfig(300, 32, 1, 2), reference)
    warm.hidden(torch.randint(0, 300, (1, 8)))
    del warm

    enter_jail(scratch, channel, request["mount_namespace"], request["uid"])
    try:
        config = ModelConfig(**checkpoint["model_config"])
        model = LanguageModel(config, load_mixer(Path(CANDIDATE_FILE).read_text(), Path(CANDIDATE_FILE)))
        model.load_state_dict(checkpoint["model"])
        result = probes.trained_model_causality(model, tokens, config.vocab_size)
        code_matches = checkpoint.get("code") == Path(CANDIDATE_FILE).read_text()
        channel.emit({"event": "result", **result, "checkpoint_code_matches": code_matches})
    except BaseException as exc:  # noqa: BLE001 - a checkpoint that does not load is evidence too
        channel.emit({"event": "failure", "kind": "recheck_failed", "message": f"{type(exc).__name__}: {exc}"[:2000],
                      "traceback": excerpt(exc)})
