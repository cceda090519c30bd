"""The cognition service: owns the Qdrant store (local mode in the data dir, or a server),
serves retrieval over gRPC, and rebuilds experience from the log when it is missing."""

from __future__ import annotations

import asyncio

from services.cognition.knowledge import ExperienceEntry, KnowledgeBase
from services.cognition.servicer import CognitionServicer
from services.pb import cognition_pb2_grpc
from services.runtime.app import EventService, Registrar, main


class CognitionService(EventService):
    name = "cognition"

    async def start(self) -> None:
        if self.settings.qdrant_url:
            self.knowledge = KnowledgeBase.open(url=self.settings.qdrant_url)
        else:
            self.knowledge = KnowledgeBase.open(data_dir=self.settings.data_dir)
        added = await asyncio.to_thread(self.knowledge.ensure_built)
        self.log.info("cognition.built", added=added, entries=self.knowledge.count("cognition"))
        self.verified: set[str] = set()

    async def close(self) -> None:
        self.knowledge.close()

    def registrars(self) -> list[Registrar]:
        servicer = CognitionServicer(self.knowledge)
        return [lambda server: cognition_pb2_grpc.add_CognitionServicer_to_server(servicer, server)]

    async def react(self) -> None:
        """Re-file any analysed experience the store lacks (a fresh or lost Qdrant)."""
        for arch in self.projection.archs.values():
            if arch.status != "analyzed" or not arch.experience_id or arch.experience_id in self.verified:
                continue
            if await asyncio.to_thread(self.knowledge.get_experience, arch.experience_id) is None:
                entry = ExperienceEntry(
                    run_id=arch.run_id,
                    arch_id=arch.arch_id,
                    parent_id=arch.parents[0] if arch.parents else "",
                    summary=arch.analysis,
                    changes=arch.changes,
                    outcome=arch.outcome,
                    fitness=arch.fitness or 0.0,
                    tags=arch.analysis_tags,
                )
                restored = await asyncio.to_thread(self.knowledge.add_experience, entry)
                self.log.info("experience.restored", arch_id=arch.arch_id, experience_id=restored)
            self.verified.add(arch.experience_id)


if __name__ == "__main__":
    main(CognitionService)
