"""The launcher tells the person watching when a service's reaction keeps failing: once per kind of
exception, from the service's own log, never from a half-written line."""

from __future__ import annotations

import json
from pathlib import Path

from services.runtime.launcher import ServiceProcess


def failed(exception: str) -> str:
    return json.dumps({"event": "react.failed", "exception": exception, "service": "researcher"}) + "\n"


def test_each_kind_of_failed_reaction_is_reported_once_and_only_when_its_line_is_complete(tmp_path: Path) -> None:
    service = ServiceProcess("researcher", "researcher", {}, tmp_path)
    traceback = "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: invalid components"
    with open(service.log_path, "w") as log:
        log.write(json.dumps({"event": "service.ready"}) + "\n")
        log.write(failed(traceback))
        log.write(failed(traceback))  # the same failure at the next idle: already said
        log.write(failed("Traceback ...\nKeyError: 'arch-1'")[:30])  # still being written
    assert service.failed_reactions() == ["ValueError: invalid components"]
    with open(service.log_path, "a") as log:
        log.write(failed("Traceback ...\nKeyError: 'arch-1'")[30:])
        log.write(failed(traceback))
        log.write("not json, \"react.failed\" in passing\n")
    assert service.failed_reactions() == ["KeyError: 'arch-1'"]
    assert service.failed_reactions() == []
