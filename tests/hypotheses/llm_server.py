"""A local stand-in for an LLM endpoint, so the LLM backend is tested without the network.

`LLMServer` listens on 127.0.0.1 (a free port) in a thread and answers
`POST /v1/chat/completions` (OpenAI shape) and `POST /v1/messages` (Anthropic shape) with
whatever `Reply` the test scripted, after an optional delay. It records every request
(path, headers, decoded JSON body) so a test can check what the client sent.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: a JSON body (dict) or raw text, its status, and a delay first."""

    body: Any = None
    status: int = 200
    delay_s: float = 0.0


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _State:
    replies: dict[str, Reply] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


def openai_completion(content: str | None, *, refusal: str | None = None, finish_reason: str = "stop") -> dict:
    """A chat.completion body as the OpenAI API (and vLLM, llama.cpp, Ollama) returns it."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 321, "completion_tokens": 54, "total_tokens": 375},
    }


def openai_error(status: int, message: str) -> Reply:
    return Reply({"error": {"message": message, "type": "server_error", "param": None, "code": None}}, status)


def anthropic_message(content: list[dict], *, stop_reason: str = "tool_use") -> dict:
    """A Messages API body; `content` holds text and tool_use blocks."""
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "test-model",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 321, "output_tokens": 54},
    }


def tool_use(name: str, tool_input: Any) -> dict:
    return {"type": "tool_use", "id": "toolu_test", "name": name, "input": tool_input}


def text_block(text: str) -> dict:
    return {"type": "text", "text": text}


def anthropic_error(status: int, message: str) -> Reply:
    return Reply({"type": "error", "error": {"type": "api_error", "message": message}}, status)


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with state.lock:
            state.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            reply = state.replies.get(self.path)
            release = state.release
        if reply is None:
            reply = Reply({"error": {"message": f"no reply scripted for {self.path}"}}, 404)
        if reply.delay_s > 0 and release.wait(reply.delay_s):
            return  # the test is over; nobody is listening
        payload = reply.body if isinstance(reply.body, (str, bytes)) else json.dumps(reply.body)
        data = payload.encode() if isinstance(payload, str) else payload
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json" if not isinstance(reply.body, (str, bytes)) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = _State()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-request is expected in timeout tests


class LLMServer:
    """Start with `with LLMServer() as server:`; script with `reply_openai` / `reply_anthropic`."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[Recorded]:
        with self._server.state.lock:
            return list(self._server.state.requests)

    def reply_openai(self, reply: Reply | dict) -> None:
        self._set(OPENAI_PATH, reply)

    def reply_anthropic(self, reply: Reply | dict) -> None:
        self._set(ANTHROPIC_PATH, reply)

    def _set(self, path: str, reply: Reply | dict) -> None:
        with self._server.state.lock:
            self._server.state.replies[path] = reply if isinstance(reply, Reply) else Reply(reply)

    def reset(self) -> None:
        """Forget the script and the requests, and let any delayed handler finish now."""
        state = self._server.state
        with state.lock:
            state.release.set()
            state.release = threading.Event()
            state.replies.clear()
            state.requests.clear()

    def start(self) -> "LLMServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.state.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "LLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
