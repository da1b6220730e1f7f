"""What every ARI resource of the stand-in shares: the route entry, Asterisk's response headers,
parameter parsing and the lookups that answer 404 and 409 as Asterisk does.

Each resource's handlers are a class over ``Resource`` in its own module (``ari_channels.py``,
``ari_bridges.py``; the small read-only ones and the events websocket in ``ari.py``), with the
slice of the route table that serves them; ``ari.Ari`` is all of them over one ``PbxSim``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent.pbxsim.model import NOT_IN_STASIS, RestError, SimBridge

if TYPE_CHECKING:  # annotations only: ari.py imports this module
    from agent.pbxsim.ari import Ari
    from agent.pbxsim.engine import PbxSim
    from agent.pbxsim.model import SimChannel

Params = dict[str, str]
HandlerFn = Callable[["Ari", web.Request, Params, dict[str, Any]], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: HandlerFn
    params: tuple[str, ...] = ()
    """Query (or JSON body) parameters this route reads, named as in the api-docs."""


def json_response(body: Any, status: int = 200) -> web.Response:
    # Asterisk sends "Content-type: application/json" with no charset (ari_http_raw.txt);
    # bytes keep aiohttp from adding one. Header names match case-insensitively.
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        headers={"Cache-Control": "no-cache, no-store", "Server": "Asterisk/23.4.1"},
    )


def no_content() -> web.Response:
    return web.Response(
        status=204, headers={"Cache-Control": "no-cache, no-store", "Server": "Asterisk/23.4.1"}
    )


def int_param(params: Params, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise RestError(400, f"{name}: invalid value {raw!r}, expected an integer") from None


def variables(body: dict[str, Any]) -> dict[str, str]:
    """The ``variables`` object of a request body, as channel variables."""
    raw = body.get("variables")
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


class Resource:
    """Request handlers over one ``PbxSim``, with the lookups every resource uses."""

    def __init__(self, sim: PbxSim) -> None:
        self.sim = sim

    def channel(self, cid: str) -> SimChannel:
        ch = self.sim.channels.get(cid)
        if ch is None:
            raise RestError(404, "Channel not found")
        return ch

    def stasis_channel(self, cid: str) -> SimChannel:
        ch = self.channel(cid)
        if not ch.in_stasis:
            raise RestError(409, NOT_IN_STASIS)
        return ch

    def bridge(self, bid: str) -> SimBridge:
        br = self.sim.bridges.get(bid)
        if br is None:
            raise RestError(404, "Bridge not found")
        return br
