"""The client side of a served LLM (vLLM or any OpenAI-compatible server).

One call shape: a system and a user message in, one JSON object out, constrained by a
JSON schema through `response_format`. The prompt and the raw answer go into the event
that the answer decided, so a run can be replayed and audited without the LLM.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx


class LLMError(RuntimeError):
    """The LLM could not be reached or its answer does not fit the schema."""


@dataclass(frozen=True)
class Exchange:
    prompt: str  # system and user messages as one JSON document
    response: str  # the raw answer text
    answer: dict[str, Any]


@dataclass(frozen=True)
class LLMClient:
    base_url: str  # ends in /v1, as for the OpenAI client
    model: str
    timeout_s: float = 300.0

    @property
    def label(self) -> str:
        return f"llm:{self.model}"

    async def ask_json(self, system: str, user: str, *, schema_name: str, schema: dict[str, Any]) -> Exchange:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        body = {"model": self.model, "messages": messages, "temperature": 0,
                "response_format": {"type": "json_schema", "json_schema": {"name": schema_name, "schema": schema}}}
        url = self.base_url.rstrip("/") + "/chat/completions"
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(url, json=body)
                response.raise_for_status()
                content = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            raise LLMError(f"LLM request to {url} failed: {exc}") from exc
        answer = parse_answer(content, schema)
        return Exchange(json.dumps(messages, sort_keys=True), content, answer)


def parse_answer(content: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON object in `content` (a Markdown fence is tolerated), checked for the schema's
    required keys and their basic types."""
    fenced = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", content, flags=re.DOTALL)
    try:
        answer = json.loads(fenced.group(1) if fenced else content)
    except json.JSONDecodeError as exc:
        raise LLMError(f"the answer is not JSON: {exc}") from exc
    if not isinstance(answer, dict):
        raise LLMError("the answer is not a JSON object")
    types = {"string": str, "number": (int, float), "integer": int, "array": list, "object": dict}
    for key in schema.get("required", []):
        if key not in answer:
            raise LLMError(f"the answer lacks {key!r}")
        expected = schema.get("properties", {}).get(key, {}).get("type")
        if expected in types and not isinstance(answer[key], types[expected]):
            raise LLMError(f"{key!r} should be a {expected}, got {type(answer[key]).__name__}")
    return answer


def from_settings(url: str, model: str) -> LLMClient | None:
    return LLMClient(url, model) if url else None
