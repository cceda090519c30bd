"""A keyed OpenAI-compatible server (vLLM with --api-key) gets the key the settings name, through
the real ``AsyncOpenAI`` client, and a service without one sends none of ours."""

from __future__ import annotations

import asyncio
import json

import pytest

from services.runtime.config import Settings
from services.runtime.llm import from_settings
from tests.recorded_llm import RecordedAnswerServer, completion

ANSWER = completion(json.dumps({"score": 7, "rationale": "fine"}))
SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}, "rationale": {"type": "string"}}}


def ask(monkeypatch: pytest.MonkeyPatch, url: str, key: str | None) -> None:
    monkeypatch.setenv("ASI_NATS_URL", "nats://127.0.0.1:4222")
    monkeypatch.setenv("ASI_LLM_URL", url)
    if key is None:
        monkeypatch.delenv("ASI_LLM_API_KEY", raising=False)
    else:
        monkeypatch.setenv("ASI_LLM_API_KEY", key)
    client = from_settings(Settings.from_env())
    assert client is not None
    exchange = asyncio.run(client.ask_json("system", "user", schema_name="rubric", schema=SCHEMA))
    assert exchange.answer["score"] == 7


def test_the_settings_key_is_sent_as_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with RecordedAnswerServer({"rubric": ANSWER}) as server:
        ask(monkeypatch, server.base_url, "s3cret-key")
        ask(monkeypatch, server.base_url, None)
    assert server.authorizations == ["Bearer s3cret-key", "Bearer unused"]


def test_no_llm_url_means_no_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASI_NATS_URL", "nats://127.0.0.1:4222")
    monkeypatch.setenv("ASI_LLM_URL", "")
    assert from_settings(Settings.from_env()) is None
