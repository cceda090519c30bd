"""A recorded-answer server: a local OpenAI-compatible HTTP endpoint that replays chat
completions. It stands in for vLLM, which cannot run here; the clients under test are the
real ones, speaking real HTTP. No model can be reached from these machines either, so the
answers in tests/recorded/ were written by hand in the exact shape vLLM returns (including a
Markdown-fenced one, which servers without structured output tend to send)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).parent / "recorded"


class RecordedAnswerServer:
    """Answers POST /v1/chat/completions with the recording for the request's JSON-schema
    name (`response_format.json_schema.name`), and keeps every request it received."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                name = body.get("response_format", {}).get("json_schema", {}).get("name", "")
                answer = outer.answers.get(name)
                status = 200 if self.path == "/v1/chat/completions" and answer is not None else 404
                payload = json.dumps(answer or {"error": f"no recording for {name!r}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @classmethod
    def from_files(cls, **files: str) -> RecordedAnswerServer:
        """schema name = file name under tests/recorded/."""
        return cls({name: json.loads((RECORDED / file).read_text()) for name, file in files.items()})

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> RecordedAnswerServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
