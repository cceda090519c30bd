"""A recorded-answer server: a local OpenAI-compatible HTTP endpoint that replays chat
completions. It stands in for a served model in tests that need a fixed answer; the clients
under test are the real ones (the ``openai`` package's ``AsyncOpenAI``), speaking real HTTP.

Where the answers come from: tests/recorded/llm-mind/ holds chat completions recorded from
the real Qwen2.5-Coder-0.5B-Instruct served by llama-server on this machine
(``tests/record_llm_answers.py`` re-records them); the malformed kinds a real model would not
produce on demand (a refusal, an HTTP 500, an edit that misses) are derived from those by hand,
and each test says which it uses. The judge's and analyst's recordings (rubric, analysis) were
written by hand in the exact shape vLLM returns, before a model could run here.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).parent / "recorded"


def completion(content: str, *, finish_reason: str = "stop", prompt_tokens: int = 100,
               completion_tokens: int = 50, model: str = "recorded-model") -> dict[str, Any]:
    """A chat completion in the shape vLLM and llama-server return."""
    return {"id": "chatcmpl-recorded", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def http_error(status: int, message: str = "internal error") -> dict[str, Any]:
    """A script entry answered with ``status`` instead of a completion."""
    return {"http_status": status, "body": {"error": {"message": message, "code": status}}}


def delayed(seconds: float, then: dict[str, Any]) -> dict[str, Any]:
    """A script entry answered after ``seconds`` (a client with a shorter timeout gives up)."""
    return {"delay_s": seconds, "then": then}


def dies() -> dict[str, Any]:
    """A script entry at which the server drops the connection unanswered and shuts down, as a
    server that crashes mid-run: every later request is refused."""
    return {"die": True}


def load(name: str) -> dict[str, Any]:
    """A recorded completion from tests/recorded/ (e.g. "llm-mind/propose-deltanet.json")."""
    return json.loads((RECORDED / name).read_text())


class RecordedAnswerServer:
    """Answers POST /v1/chat/completions for the request's JSON-schema name
    (``response_format.json_schema.name``) and keeps every request it received.

    ``answers[name]`` is one entry, served every time, or a list served in order (the last
    one repeats). An entry is a chat completion, ``http_error(...)``, ``delayed(...)`` or ``dies()``.
    """

    def __init__(self, answers: dict[str, dict[str, Any] | list[dict[str, Any]]]) -> None:
        self.scripts = {name: list(a) if isinstance(a, list) else [a] for name, a in answers.items()}
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str] = []  # each request's Authorization header
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.authorizations.append(self.headers.get("Authorization", ""))
                name = body.get("response_format", {}).get("json_schema", {}).get("name", "")
                entry = outer._next(name, body) if self.path == "/v1/chat/completions" else None
                while entry is not None and "delay_s" in entry:
                    time.sleep(entry["delay_s"])
                    entry = entry["then"]
                if entry is not None and entry.get("die"):
                    self.close_connection = True
                    threading.Thread(target=outer.stop, daemon=True).start()
                    return
                if entry is None:
                    status, payload = 404, {"error": f"no recording for {name!r}"}
                elif "http_status" in entry:
                    status, payload = entry["http_status"], entry["body"]
                else:
                    status, payload = 200, entry
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.running = False

    def _next(self, name: str, body: dict[str, Any]) -> dict[str, Any] | None:
        with self.lock:
            self.requests.append(body)
            script = self.scripts.get(name)
            if not script:
                return None
            return copy.deepcopy(script.pop(0) if len(script) > 1 else script[0])

    @classmethod
    def from_files(cls, **files: str) -> RecordedAnswerServer:
        """schema name = file name under tests/recorded/."""
        return cls({name: load(file) for name, file in files.items()})

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        """Stop answering: from now on connections are refused, as from a server that died."""
        with self.lock:
            if not self.running:
                return
            self.running = False
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RecordedAnswerServer:
        self.thread.start()
        self.running = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
