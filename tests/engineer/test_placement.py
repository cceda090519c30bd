"""The default number of engineers and their threads follow the core count."""

import pytest

from services.engineer import placement


def test_one_engineer_per_core_up_to_the_cap_and_the_cores_shared_out_as_threads() -> None:
    assert placement.default_engineers(1) == 1
    assert placement.default_engineers(2) == 2  # the 2-core machine: 2 engineers x 1 thread
    assert placement.default_engineers(64) == placement.MAX_DEFAULT_ENGINEERS
    assert placement.threads_per_engineer(2, 2) == 1
    assert placement.threads_per_engineer(2, 1) == 2
    assert placement.threads_per_engineer(16, 4) == 4
    assert placement.threads_per_engineer(2, 3) == 1  # never zero


def test_an_experiment_takes_the_launchers_share_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(placement.ENGINEER_THREADS_ENV, "1")
    assert placement.experiment_threads() == 1
    monkeypatch.delenv(placement.ENGINEER_THREADS_ENV)
    assert placement.experiment_threads() == placement.usable_cores()
