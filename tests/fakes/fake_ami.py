"""A fake Asterisk Manager Interface on 127.0.0.1 that replays a recorded Asterisk 23 session.

The recording is ``../shared/asterisk-reference/ami/ami_session.txt`` (``>>>`` sent, ``<<<``
received). For each action a client sends, the fake finds the recorded action with the same fields
(``ActionID`` aside) and writes back, byte for byte, every message Asterisk sent after it up to
the next action or note: the response, and the events that followed (the ``OriginateResponse``
of an async Originate, the ``DeviceStateChange`` list...). Only the ``ActionID`` lines are
rewritten to the client's id, as Asterisk echoes the id it was sent.

Not recorded, so built by the fake and marked as such:
- ``Permission denied`` for actions listed in ``denied`` (Asterisk's text for an action beyond the
  user's ``write`` classes, ``main/manager.c``);
- an action the recording has under other fields answers ``Response: Error`` with a message that
  says it is the fake talking, so a test sending something unexpected fails loudly.

An unknown action gets the recorded ``Invalid/unknown command`` reply with its own name. A wrong
secret gets the recorded failed-login bytes and the socket is closed ``close_after_bad_login_s``
later, as Asterisk does (1.0 s in the recording).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "asterisk-reference" / "ami"
SESSION = REFERENCE / "ami_session.txt"
MESSAGES = REFERENCE / "ami_messages.jsonl"

EOL = "\r\n"


@dataclass
class Exchange:
    action: list[tuple[str, str]]
    replies: list[list[str]] = field(default_factory=list)
    """Each reply is the recorded lines of one message (without the blank line ending it)."""

    @property
    def name(self) -> str:
        return _get(self.action, "Action")

    @property
    def action_id(self) -> str:
        return _get(self.action, "ActionID")

    def key(self) -> tuple[tuple[str, str], ...]:
        return _key(self.action)


@dataclass
class Recording:
    banner: bytes
    bad_login: bytes
    exchanges: list[Exchange]
    unsolicited: dict[str, list[list[str]]]
    """Messages recorded after a note and before the next action, by the note's text (the direct
    call through 6001 and its events)."""

    def find(self, action: list[tuple[str, str]]) -> Exchange | None:
        key = _key(action)
        return next((ex for ex in self.exchanges if ex.key() == key), None)

    def by_name(self, name: str) -> Exchange | None:
        return next((ex for ex in self.exchanges if ex.name.lower() == name.lower()), None)


def _get(fields: list[tuple[str, str]], name: str) -> str:
    return next((v for k, v in fields if k.lower() == name.lower()), "")


def _key(fields: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k.lower(), v) for k, v in fields if k.lower() not in ("actionid",)))


def load_recording(session: Path = SESSION, messages: Path = MESSAGES) -> Recording:
    banner = b""
    bad_login = b""
    for line in messages.read_text().splitlines():
        record = json.loads(line)
        if "banner" in record:
            banner = record["banner"].encode()
        if "bad_login_raw" in record:
            bad_login = record["bad_login_raw"].encode()
    exchanges: list[Exchange] = []
    unsolicited: dict[str, list[list[str]]] = {}
    # The first connection (failed login) is written as Python bytes reprs; its bytes come from
    # the JSONL above. The real session starts at "connection 2".
    lines = session.read_text().split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("### connection 2"))
    sink: list[list[str]] | None = None
    action: list[tuple[str, str]] | None = None
    message: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("### "):
            sink = unsolicited.setdefault(line[4:], [])
            continue
        if line.startswith(">>>"):
            text = line[4:]
            if action is None:
                action = []
            if text:
                k, _, v = text.partition(": ")
                action.append((k, v))
            else:
                exchanges.append(Exchange(action))
                sink = exchanges[-1].replies
                action = None
            continue
        if line.startswith("<<<"):
            text = line[4:]
            if text.startswith("b'") or text == "EOF":
                continue  # the banner (from the JSONL) and the end marker
            if text:
                message.append(text)
            elif message:
                if sink is not None:
                    sink.append(message)
                message = []
    return Recording(banner, bad_login, exchanges, unsolicited)


class FakeAmi:
    """``await start()`` → port; ``drop()`` closes every client socket (a lost AMI);
    ``stop()``/``start()`` restart on the same port. ``received`` lists the actions clients sent."""

    def __init__(
        self,
        *,
        username: str = "medagent",
        secret: str = "secret",
        denied: frozenset[str] = frozenset(),
        hold: frozenset[str] = frozenset(),
        close_after_bad_login_s: float = 0.05,
        recording: Recording | None = None,
    ) -> None:
        self.username = username
        self.secret = secret
        self.denied = {a.lower() for a in denied}
        self.hold = {a.lower() for a in hold}
        """Actions answered with their first recorded message only; the rest (an Originate's
        OriginateResponse) never comes, as while a phone rings."""
        self.close_after_bad_login_s = close_after_bad_login_s
        self.recording = recording or load_recording()
        self.received: list[dict[str, str]] = []
        self.logins = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.drop()

    async def drop(self) -> None:
        for writer in list(self._writers):
            writer.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def send_event(self, lines: list[str]) -> None:
        """Push an unsolicited event (e.g. one of ``recording.unsolicited``) to every client."""
        for writer in list(self._writers):
            writer.write(_block(lines))
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        authenticated = False
        try:
            writer.write(self.recording.banner)
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                fields = [
                    (k, v)
                    for k, _, v in (
                        line.partition(": ") for line in raw.decode().split(EOL) if line
                    )
                ]
                action = {k: v for k, v in fields}
                self.received.append(action)
                name = _get(fields, "Action")
                action_id = _get(fields, "ActionID")
                if name.lower() == "login":
                    if _get(fields, "Username") != self.username or (
                        _get(fields, "Secret") != self.secret
                    ):
                        writer.write(
                            self.recording.bad_login.replace(
                                b"ActionID: badlogin", f"ActionID: {action_id}".encode()
                            )
                        )
                        await writer.drain()
                        await asyncio.sleep(self.close_after_bad_login_s)
                        return
                    authenticated = True
                    self.logins += 1
                    fields = [(k, v) for k, v in fields if k.lower() != "secret"]
                    fields.append(("Secret", "secret"))
                elif not authenticated:
                    # Asterisk's answer to any action before Login.
                    writer.write(
                        _block(
                            [
                                "Response: Error",
                                f"ActionID: {action_id}",
                                "Message: Authentication Required",
                            ]
                        )
                    )
                    await writer.drain()
                    continue
                replies = self._replies(name, fields)
                if name.lower() in self.hold:
                    replies = replies[:1]
                for reply in replies:
                    writer.write(_block(reply, action_id))
                await writer.drain()
                if name.lower() == "logoff":
                    return  # Asterisk closes the session after "Goodbye"
        except asyncio.CancelledError:
            pass
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            writer.close()

    def _replies(self, name: str, fields: list[tuple[str, str]]) -> list[list[str]]:
        if name.lower() in self.denied:
            return [["Response: Error", "ActionID: ", "Message: Permission denied"]]
        exchange = self.recording.find(fields)
        if exchange is not None:
            return exchange.replies
        if self.recording.by_name(name) is not None:
            sent = ", ".join(f"{k}={v}" for k, v in fields if k.lower() != "actionid")
            return [
                [
                    "Response: Error",
                    "ActionID: ",
                    f"Message: fake AMI has no recording of {sent}",
                ]
            ]
        unknown = self.recording.by_name("NoSuchAction")
        assert unknown is not None
        return [[line.replace("NoSuchAction", name) for line in reply] for reply in unknown.replies]


def _block(lines: list[str], action_id: str | None = None) -> bytes:
    if action_id is not None:
        lines = [f"ActionID: {action_id}" if ln.startswith("ActionID: ") else ln for ln in lines]
    return (EOL.join(lines) + EOL + EOL).encode()
