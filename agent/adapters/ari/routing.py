"""Who gets an ARI event: every subscriber, and the call streams that follow its channels or bridges.

One websocket carries the events of every call; :class:`EventRouter` hands each event to the
subscribers (the supervisor) and to the :class:`CallEvents` of each call that follows a channel or
bridge the event names. An event that names several followed channels (``Dial``: peer + caller) is
delivered to a call once.

**Slow consumers** never block the websocket reader: each queue is bounded and drops its *oldest*
event when full (logged, counted in :attr:`EventStream.dropped`). Dropping the oldest keeps the
newest state (a ``StasisEnd`` still arrives).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from agent.adapters.ari.models import Connected, Disconnected, Event, bridge_ids, channel_ids
from agent.log import get_logger

log = get_logger("agent.adapters.ari")

Item = Event | Connected | Disconnected

DEFAULT_QUEUE_SIZE = 1024
"""Events a subscriber may fall behind before the oldest are dropped (a call makes ~100)."""


class StreamEnd:
    """Queue sentinel: the stream is over (``error`` None) or failed."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class EventStream:
    """A bounded queue of events for one consumer; async-iterable. Close it (or use ``with``)."""

    def __init__(self, name: str, maxsize: int, on_close: Callable[[EventStream], None]) -> None:
        self.name = name
        self.dropped = 0
        """Events dropped because this consumer fell more than ``maxsize`` behind."""
        self.maxsize = maxsize
        # Unbounded underneath: the bound is enforced in _deliver so that the end-of-stream
        # marker always fits without pushing out an event.
        self._queue: asyncio.Queue[Item | StreamEnd] = asyncio.Queue()
        self._on_close = on_close
        self._closed = False

    def _deliver(self, item: Item | StreamEnd) -> None:
        """Called by the websocket reader; never blocks."""
        if self._closed:
            return
        if not isinstance(item, StreamEnd):
            while self._queue.qsize() >= self.maxsize:
                self._queue.get_nowait()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    log.warning(
                        "ari queue full, dropped oldest event",
                        queue=self.name,
                        dropped=self.dropped,
                    )
        self._queue.put_nowait(item)

    async def get(self) -> Item:
        """The next event. Raises ``StopAsyncIteration`` after ``close()`` / client close, or the
        client's fatal error (``AriUnauthorized``)."""
        item = await self._queue.get()
        if isinstance(item, StreamEnd):
            self._queue.put_nowait(item)  # later get() calls end the same way
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    def get_nowait(self) -> Item | None:
        """The next event if one is queued (``None`` otherwise); for tests and draining."""
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if isinstance(item, StreamEnd):
            self._queue.put_nowait(item)
            return None
        return item

    def __aiter__(self) -> AsyncIterator[Item]:
        return self

    async def __anext__(self) -> Item:
        return await self.get()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(self)
            # Wake a consumer blocked in get().
            self._queue.put_nowait(StreamEnd(None))

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_S = TypeVar("_S", bound=EventStream)


class CallEvents(EventStream):
    """The events of one call: those of the channels and bridges it follows. An event that names
    several followed channels (``Dial``: peer + caller) is delivered once."""

    def __init__(
        self,
        name: str,
        maxsize: int,
        on_close: Callable[[EventStream], None],
        on_follow: Callable[[CallEvents], None],
    ) -> None:
        super().__init__(name, maxsize, on_close)
        self.channel_ids: set[str] = set()
        self.bridge_ids: set[str] = set()
        self._on_follow = on_follow

    def follow_channel(self, channel_id: str) -> None:
        self.channel_ids.add(channel_id)
        self._on_follow(self)

    def follow_bridge(self, bridge_id: str) -> None:
        self.bridge_ids.add(bridge_id)
        self._on_follow(self)


class EventRouter:
    """The open streams and the index from channel and bridge ids to the calls that follow them."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._subscribers: list[EventStream] = []
        self._by_channel: dict[str, set[CallEvents]] = {}
        self._by_bridge: dict[str, set[CallEvents]] = {}
        self._calls: set[CallEvents] = set()

    def subscribe(self, maxsize: int | None, ended_by: BaseException | None) -> EventStream:
        """A stream of every event plus ``Connected``/``Disconnected``. ``ended_by``: the client's
        fatal error if it already failed, so the new stream raises it at once."""
        stream = EventStream("subscriber", maxsize or self._queue_size, self._unsubscribe)
        self._subscribers.append(stream)
        if ended_by is not None:
            stream._deliver(StreamEnd(ended_by))
        return stream

    def channel_events(self, channel_id: str, maxsize: int | None) -> CallEvents:
        stream = CallEvents(
            f"call:{channel_id}", maxsize or self._queue_size, self._unsubscribe, self._index
        )
        self._calls.add(stream)
        stream.follow_channel(channel_id)
        return stream

    def signal(self, item: Connected | Disconnected) -> None:
        """Connection news goes to subscribers only: a call cannot act on it."""
        for stream in list(self._subscribers):
            stream._deliver(item)

    def route(self, event: Event) -> None:
        for stream in list(self._subscribers):
            stream._deliver(event)
        targets: set[CallEvents] = set()
        for cid in channel_ids(event):
            targets |= self._by_channel.get(cid, set())
        for bid in bridge_ids(event):
            targets |= self._by_bridge.get(bid, set())
        for stream in targets:
            stream._deliver(event)

    def end(self, error: BaseException | None) -> None:
        """End every open stream: cleanly (client closed) or with the client's fatal error."""
        for stream in [*self._subscribers, *self._calls]:
            stream._deliver(StreamEnd(error))

    def _unsubscribe(self, stream: EventStream) -> None:
        if stream in self._subscribers:
            self._subscribers.remove(stream)
        if isinstance(stream, CallEvents):
            self._calls.discard(stream)
            for cid in stream.channel_ids:
                self._by_channel.get(cid, set()).discard(stream)
                if not self._by_channel.get(cid, True):
                    del self._by_channel[cid]
            for bid in stream.bridge_ids:
                self._by_bridge.get(bid, set()).discard(stream)
                if not self._by_bridge.get(bid, True):
                    del self._by_bridge[bid]

    def _index(self, stream: CallEvents) -> None:
        for cid in stream.channel_ids:
            self._by_channel.setdefault(cid, set()).add(stream)
        for bid in stream.bridge_ids:
            self._by_bridge.setdefault(bid, set()).add(stream)
