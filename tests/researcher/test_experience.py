"""Experience statistics over a hand-built log: which introductions raised or lowered fitness."""

from __future__ import annotations

from google.protobuf.message import Message

from services.pb import events_pb2
from services.researcher.experience import TagRecord, experience_statistics
from services.runtime.projection import Projection

RUN = "run-1"


class Log:
    """Events folded into a projection, as a service or a replay would fold them."""

    def __init__(self) -> None:
        self.projection = Projection()
        self.sequence = 0

    def append(self, event: Message, aggregate: str, run: str = RUN) -> None:
        self.sequence += 1
        env = events_pb2.Envelope(event_id=f"e{self.sequence}", run_id=run, type=type(event).__name__,
                                  aggregate_id=aggregate, sequence=self.sequence)
        self.projection.apply(env, event)

    def proposed(self, arch: str, parents: list[str], run: str = RUN, **components: str) -> None:
        self.append(events_pb2.ArchitectureProposed(arch_id=arch, parent_ids=parents, is_baseline=not parents,
                                                    components={"update": "delta", "decay": "none", **components}),
                    arch, run)

    def scored(self, arch: str, fitness: float, run: str = RUN) -> None:
        self.append(events_pb2.TrainingRequested(arch_id=arch, job_id=f"job-{arch}"), arch, run)
        self.append(events_pb2.TrainingFinished(arch_id=arch, val_loss=2.0), arch, run)
        self.append(events_pb2.ArchitectureJudged(arch_id=arch, fitness=fitness), arch, run)
        self.append(events_pb2.ArchitectureAnalyzed(arch_id=arch, outcome="improved"), arch, run)

    def failed(self, arch: str) -> None:
        self.append(events_pb2.TrainingRequested(arch_id=arch, job_id=f"job-{arch}"), arch)
        self.append(events_pb2.TrainingFailed(arch_id=arch, kind="timeout", message="too slow"), arch)
        self.append(events_pb2.ArchitectureDiscarded(arch_id=arch, failure_kind="timeout"), arch)
        self.append(events_pb2.ArchitectureAnalyzed(arch_id=arch, outcome="failed"), arch)


def test_introductions_are_counted_against_every_parent() -> None:
    log = Log()
    log.proposed("seed", [])
    log.scored("seed", 0.5)
    log.proposed("a", ["seed"], decay="scalar")  # raised: 0.6 over the seed's 0.5
    log.scored("a", 0.6)
    log.proposed("b", ["seed"], path="local_global")  # lowered
    log.scored("b", 0.4)
    log.proposed("c", ["a"], decay="scalar", path="local_global", gate="output")  # lowered below a's 0.6
    log.scored("c", 0.55)
    log.proposed("d", ["seed"], householder="2")  # failed in training: lowered
    log.failed("d")
    log.proposed("e", ["seed"], gate="output")  # rejected by the novelty gate: never trained, not counted
    log.append(events_pb2.ProposalRejected(arch_id="e", gate="novelty"), "e")
    log.proposed("f", ["a", "b"], decay="scalar", path="local_global")  # a crossover: introduces nothing new
    log.scored("f", 0.9)
    log.proposed("g", ["seed"], conv="none")  # a tie with its parent counts neither way
    log.scored("g", 0.5)
    log.proposed("h", ["seed"], skip="d")  # still training: not counted yet
    log.append(events_pb2.TrainingRequested(arch_id="h", job_id="job-h"), "h")
    log.proposed("x", [], run="run-2")  # another run's experiments stay out
    log.proposed("y", ["x"], run="run-2", decay="vector")
    log.scored("x", 0.5, run="run-2")
    log.scored("y", 0.9, run="run-2")

    stats = experience_statistics(log.projection, RUN)

    assert stats == {
        "decay=scalar": TagRecord(raised=("a",)),
        "gate=output": TagRecord(lowered=("c",)),
        "householder=2": TagRecord(lowered=("d",)),
        "path=local_global": TagRecord(lowered=("b", "c")),
    }
    assert stats["path=local_global"].net == -2
    assert stats["path=local_global"].factor == 1 / 9
    assert stats["decay=scalar"].factor == 4.0
    assert experience_statistics(log.projection, "run-2") == {"decay=vector": TagRecord(raised=("y",))}


def test_an_empty_run_has_no_statistics() -> None:
    assert experience_statistics(Projection(), RUN) == {}
