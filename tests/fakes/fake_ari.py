"""A small fake ARI server on 127.0.0.1 (aiohttp ``TestServer``) that replays recorded traces.

REST: every ``rest`` record of a trace (``../shared/asterisk-reference/traces/*.jsonl``) becomes a
canned answer keyed by method, path and query; a request without a recorded answer gets ARI's
``404 {"message": "Resource not found"}``. Requests are recorded (method, raw path, query, headers,
body) so tests can assert what the client sent. Basic auth is checked as Asterisk does (401 with
``WWW-Authenticate``).

Events: one websocket at ``/ari/events``; the test pushes recorded events (or raw frames) into it,
closes it with a close frame, or drops the transport without one (Asterisk ``core stop now``).
``stop()``/``start()`` take the whole server down and up again on the same port, so the client
sees connection refused in between.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

Query = tuple[tuple[str, str], ...]
Hook = Callable[["RecordedRequest"], Coroutine[Any, Any, None]]


def load_trace(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trace_events(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["event"] for r in records if r["kind"] == "event"]


def trace_rest(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == "rest"]


def query_key(query: dict[str, Any] | None) -> Query:
    """A recorded query (values may be ints) in the form the server receives it."""
    return tuple(sorted((k, str(v)) for k, v in (query or {}).items()))


@dataclass
class RecordedRequest:
    method: str
    path: str
    """Raw (still percent-encoded) path after ``/ari``."""
    query: Query
    url: str
    headers: dict[str, str]
    body: Any


class FakeAri:
    def __init__(
        self, *, username: str = "medagent", password: str = "secret", app: str = "medical-agent"
    ) -> None:
        self.username = username
        self.password = password
        self.app = app
        self.requests: list[RecordedRequest] = []
        self.ws_requests: list[RecordedRequest] = []
        """Every websocket upgrade attempt, accepted or not."""
        self.ws_refuse_status: int | None = None
        """Answer upgrades with this HTTP status (a half-started Asterisk answered 404)."""
        self.rest_delay_s = 0.0
        """Answer REST requests this late (a stalled Asterisk)."""
        self.hooks: dict[tuple[str, str], Hook] = {}
        """(method, path) → coroutine run after the response is sent (to emit events)."""
        self._answers: dict[tuple[str, str, Query | None], deque[tuple[int, Any]]] = {}
        self._ws: web.WebSocketResponse | None = None
        self._ws_request: web.Request | None = None
        self._ws_open = asyncio.Event()
        self._server: TestServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # -- scripting ---------------------------------------------------------------------------

    def respond(
        self, method: str, path: str, status: int, body: Any, query: dict[str, Any] | None = None
    ) -> None:
        """Queue an answer. ``query`` None: whatever the query. Answers for one key are given in
        order; the last one repeats."""
        key = (method, path, None if query is None else query_key(query))
        self._answers.setdefault(key, deque()).append((status, body))

    def replay(self, records: Iterable[dict[str, Any]]) -> None:
        for r in trace_rest(records):
            self.respond(
                r["method"], r["path"], r["status"], r["response_body"], r.get("query") or {}
            )

    async def send_event(self, event: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(event))

    async def send_raw(self, frame: str) -> None:
        if self._ws is None:
            raise RuntimeError("no events websocket is open")
        await self._ws.send_str(frame)

    async def wait_ws_open(self, timeout_s: float = 2.0) -> None:
        await asyncio.wait_for(self._ws_open.wait(), timeout_s)

    async def close_ws(self, code: int = 1000) -> None:
        """Close the events websocket with a close frame."""
        ws, self._ws = self._ws, None
        self._ws_open.clear()
        if ws is not None:
            await ws.close(code=code)

    def abort_ws(self) -> None:
        """Drop the events websocket's TCP connection without a close frame (→ 1006)."""
        request, self._ws, self._ws_request = self._ws_request, None, None
        self._ws_open.clear()
        if request is not None and request.transport is not None:
            request.transport.abort()

    # -- server ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ari"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ari/events", self._events)
        app.router.add_route("*", "/ari/{tail:.*}", self._rest)
        self._server = TestServer(app, host="127.0.0.1", port=self.port)
        await self._server.start_server()
        self.port = self._server.port or 0

    async def stop(self) -> None:
        self.abort_ws()
        server, self._server = self._server, None
        if server is not None:
            await server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- handlers ----------------------------------------------------------------------------

    def _record(self, request: web.Request, body: Any) -> RecordedRequest:
        raw_path = request.raw_path.split("?", 1)[0].removeprefix("/ari")
        return RecordedRequest(
            method=request.method,
            path=raw_path,
            query=tuple(sorted(request.query.items())),
            url=str(request.url),
            headers=dict(request.headers),
            body=body,
        )

    def _authorized(self, request: web.Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return request.headers.get("Authorization") == expected

    @staticmethod
    def _unauthorized() -> web.Response:
        return web.json_response(
            {"message": "Authentication required"},
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
        )

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        text = await request.text()
        recorded = self._record(request, json.loads(text) if text else None)
        self.requests.append(recorded)
        if self.rest_delay_s:
            await asyncio.sleep(self.rest_delay_s)
        if not self._authorized(request):
            return self._unauthorized()
        answers = self._answers.get((recorded.method, recorded.path, recorded.query))
        if answers is None:
            answers = self._answers.get((recorded.method, recorded.path, None))
        if not answers:
            return web.json_response({"message": "Resource not found"}, status=404)
        status, body = answers.popleft() if len(answers) > 1 else answers[0]
        hook = self.hooks.get((recorded.method, recorded.path))
        if hook is not None:
            task = asyncio.create_task(hook(recorded), name="fake-ari-hook")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if body is None:
            return web.Response(status=status)
        return web.json_response(body, status=status)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        self.ws_requests.append(self._record(request, None))
        if not self._authorized(request):
            return self._unauthorized()
        if "app" not in request.query:
            return web.Response(status=400, text="app parameter missing")
        if self.ws_refuse_status is not None:
            return web.Response(status=self.ws_refuse_status, text="refused by the fake")
        ws = web.WebSocketResponse()
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="Upgrade Required")
        await ws.prepare(request)
        self._ws, self._ws_request = ws, request
        self._ws_open.set()
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
        if self._ws is ws:
            self._ws = None
            self._ws_open.clear()
        return ws
