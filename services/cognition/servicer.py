"""The Cognition gRPC API: a thin adapter from protobuf to the KnowledgeBase."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

import grpc

from services.cognition.knowledge import ExperienceEntry, KnowledgeBase
from services.pb import cognition_pb2, cognition_pb2_grpc


def experience_from_request(request: cognition_pb2.AddExperienceRequest) -> ExperienceEntry:
    return ExperienceEntry(
        run_id=request.run_id,
        arch_id=request.arch_id,
        parent_id=request.parent_id,
        summary=request.summary,
        changes=request.changes,
        outcome=request.outcome,
        fitness=request.fitness,
        tags=list(request.tags),
    )


class CognitionServicer(cognition_pb2_grpc.CognitionServicer):
    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.knowledge = knowledge

    async def Search(
        self, request: cognition_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> cognition_pb2.SearchResponse:
        kinds = tuple(request.kinds) or ("cognition", "experience")
        try:
            hits = await asyncio.to_thread(
                self.knowledge.search,
                request.query,
                request.k or 5,
                kinds=kinds,
                tags=list(request.tags) or None,
                paper=request.paper or None,
                run_id=request.run_id or None,
            )
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return cognition_pb2.SearchResponse(
            hits=[
                cognition_pb2.Hit(
                    id=h.id, kind=h.kind, paper=h.paper, title=h.title, score=h.score, tags=h.tags, text=h.text
                )
                for h in hits
            ]
        )

    async def GetEntry(
        self, request: cognition_pb2.GetEntryRequest, context: grpc.aio.ServicerContext
    ) -> cognition_pb2.GetEntryResponse:
        entry = await asyncio.to_thread(self.knowledge.get, request.id)
        if entry is None:
            return cognition_pb2.GetEntryResponse(found=False)
        return cognition_pb2.GetEntryResponse(found=True, entry_json=json.dumps(asdict(entry), sort_keys=True))

    async def AddExperience(
        self, request: cognition_pb2.AddExperienceRequest, context: grpc.aio.ServicerContext
    ) -> cognition_pb2.AddExperienceResponse:
        try:
            entry_id = await asyncio.to_thread(self.knowledge.add_experience, experience_from_request(request))
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return cognition_pb2.AddExperienceResponse(id=entry_id)
