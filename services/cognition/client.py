"""The gRPC client other services use to reach cognition (retrieval and experience)."""

from __future__ import annotations

import grpc

from services.pb import cognition_pb2, cognition_pb2_grpc


class CognitionClient:
    def __init__(self, address: str, *, timeout_s: float = 30.0) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = cognition_pb2_grpc.CognitionStub(self.channel)

    async def search(
        self, query: str, *, k: int = 5, kinds: tuple[str, ...] = (), tags: tuple[str, ...] = (), run_id: str = ""
    ) -> list[cognition_pb2.Hit]:
        request = cognition_pb2.SearchRequest(query=query, k=k, kinds=list(kinds), tags=list(tags), run_id=run_id)
        response = await self.stub.Search(request, timeout=self.timeout_s, wait_for_ready=True)
        return list(response.hits)

    async def add_experience(self, request: cognition_pb2.AddExperienceRequest) -> str:
        response = await self.stub.AddExperience(request, timeout=self.timeout_s, wait_for_ready=True)
        return response.id

    async def close(self) -> None:
        await self.channel.close()
