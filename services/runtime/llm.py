"""The client side of a served LLM (vLLM, llama.cpp's llama-server, any OpenAI-compatible server).

One module for every caller (researcher, judge, analyst, cognition ingest), through the
``openai`` package's ``AsyncOpenAI``. One call shape: a system and a user message in, one JSON
object out, constrained by a JSON schema in vLLM's ``response_format`` form (llama-server
accepts the same form). The prompt, the raw answer and the token usage come back with the
answer, and with every failure too, so the event that the exchange decided can hold them and a
run can be replayed and audited without the LLM.

A failure is an ``LLMError`` with a ``kind`` a caller can act on:
``unreachable`` (no server), ``timeout``, ``http_error`` (a 4xx/5xx answer), ``truncated`` (the
answer hit the token limit), ``refusal``, ``malformed`` (not the JSON object the schema asks for).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import openai

from services.runtime import metrics
from services.runtime.config import Settings

# Callers that do not say how long an answer may be get this limit: a rubric or a summary fits in
# far fewer, and a small model that rambles (measured: a 0.5B rubric ran past 540 tokens at 4
# tokens/s) must end in a clear `truncated` failure, not hold a server slot for minutes.
DEFAULT_MAX_TOKENS = 512
# The OpenAI client's own retries would hide each failed attempt from the log; callers retry.
CLIENT_RETRIES = 0
# Plain-text answers that decline the task, as small instruct models word them.
REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|sorry,|i can(no|')t|i cannot|i won'?t|as an ai)", re.I)


@dataclass(frozen=True)
class Exchange:
    prompt: str  # system and user messages as one JSON document
    response: str  # the raw answer text
    answer: dict[str, Any]
    prompt_tokens: int = 0  # from the response's `usage`
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class LLMError(RuntimeError):
    """The LLM could not be reached or its answer does not fit the schema."""

    def __init__(self, message: str, *, kind: str = "malformed", exchange: Exchange | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        # What was sent and received before the failure (answer empty), for the event that records it.
        self.exchange = exchange


@dataclass(frozen=True)
class LLMClient:
    base_url: str  # ends in /v1, as for the OpenAI client
    model: str
    timeout_s: float = 300.0
    api_key: str = "unused"  # local servers ignore it; vLLM with --api-key checks it

    @property
    def label(self) -> str:
        return f"llm:{self.model}"

    def _openai(self) -> openai.AsyncOpenAI:
        # One client per call: callers such as `kb ingest` run each call in its own event loop,
        # and a pooled HTTP connection must not outlive the loop it was opened in.
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout_s,
                                  max_retries=CLIENT_RETRIES)

    async def ask_json(self, system: str, user: str, *, schema_name: str, schema: dict[str, Any],
                       temperature: float = 0.0, max_tokens: int | None = None, seed: int | None = None) -> Exchange:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        prompt = json.dumps(messages, sort_keys=True)
        extra: dict[str, Any] = {"max_tokens": max_tokens or DEFAULT_MAX_TOKENS}
        if seed is not None:
            extra["seed"] = seed
        url = self.base_url.rstrip("/") + "/chat/completions"
        started = time.monotonic()
        try:
            async with self._openai() as client:
                completion = await client.chat.completions.create(
                    model=self.model, messages=messages, temperature=temperature,  # type: ignore[arg-type]
                    response_format={"type": "json_schema",  # type: ignore[typeddict-item]
                                     "json_schema": {"name": schema_name, "schema": schema}},
                    **extra)
        except openai.APITimeoutError as exc:
            raise LLMError(f"LLM request to {url} failed: no answer within {self.timeout_s:.0f}s", kind="timeout",
                           exchange=Exchange(prompt, "", {}, seconds=time.monotonic() - started)) from exc
        except openai.APIConnectionError as exc:
            raise LLMError(f"LLM request to {url} failed: cannot connect ({exc})", kind="unreachable",
                           exchange=Exchange(prompt, "", {}, seconds=time.monotonic() - started)) from exc
        except openai.APIStatusError as exc:
            raise LLMError(f"LLM request to {url} failed: HTTP {exc.status_code}: {str(exc)[:300]}",
                           kind="http_error",
                           exchange=Exchange(prompt, exc.response.text[:4000], {},
                                             seconds=time.monotonic() - started)) from exc
        except openai.OpenAIError as exc:  # e.g. a 200 whose body is not a chat completion
            raise LLMError(f"LLM request to {url} failed: {exc}", kind="malformed",
                           exchange=Exchange(prompt, "", {}, seconds=time.monotonic() - started)) from exc
        seconds = time.monotonic() - started
        usage = completion.usage
        choice = completion.choices[0] if completion.choices else None
        content = (choice.message.content or "") if choice else ""
        raw = Exchange(prompt, content, {}, usage.prompt_tokens if usage else 0,
                       usage.completion_tokens if usage else 0, seconds)
        metrics.observe_llm_exchange(self.model, raw)
        if choice is None:
            raise LLMError("the answer holds no choice", kind="malformed", exchange=raw)
        refusal = getattr(choice.message, "refusal", None)
        if refusal or (REFUSAL.match(content) and not content.lstrip().startswith("{")):
            raise LLMError(f"the LLM declined: {(refusal or content)[:200]}", kind="refusal", exchange=raw)
        if choice.finish_reason == "length":
            raise LLMError(f"the answer was cut off at the token limit after {raw.completion_tokens} tokens",
                           kind="truncated", exchange=raw)
        try:
            answer = parse_answer(content, schema)
        except LLMError as exc:
            raise LLMError(str(exc), kind="malformed", exchange=raw) from exc
        return Exchange(prompt, content, answer, raw.prompt_tokens, raw.completion_tokens, seconds)


def parse_answer(content: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON object in `content` (a Markdown fence is tolerated), checked for the schema's
    required keys and their basic types. Raw newlines inside strings are accepted: some
    servers' schema grammars let them through (FIELD-NOTES)."""
    fenced = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", content, flags=re.DOTALL)
    if not content.strip():
        raise LLMError("the answer is empty")
    try:
        answer = json.loads(fenced.group(1) if fenced else content, strict=False)
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


def from_settings(settings: Settings) -> LLMClient | None:
    """The client a service's settings name, or None when no LLM is configured."""
    if not settings.llm_url:
        return None
    return LLMClient(settings.llm_url, settings.llm_model, api_key=settings.llm_api_key or "unused")
