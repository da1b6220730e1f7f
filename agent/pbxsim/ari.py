"""The stand-in's ARI surface: REST routes and the events websocket, on aiohttp.

One table (``ROUTES``) lists every method, path and query parameter served; paths and parameter
names are Asterisk's own (``ari-api-docs``), which the conformance test checks by introspecting
this table and the router. Status codes and bodies are the recorded ones (``traces/*.jsonl``).

Each resource has its module, with its handlers and its slice of the table: ``ari_channels.py``,
``ari_bridges.py`` (and playbacks); the read-only ``asterisk``, ``applications``, ``endpoints``
and ``deviceStates`` and the events websocket are here, with the server and its authentication.
What they share is ``ari_rest.py``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from agent.log import get_logger
from agent.pbxsim.ari_bridges import BRIDGE_ROUTES, PLAYBACK_ROUTES, BridgeRoutes
from agent.pbxsim.ari_channels import CHANNEL_ROUTES, ChannelRoutes
from agent.pbxsim.ari_rest import Params, Route, json_response
from agent.pbxsim.model import ASTERISK_ID, RestError, ari_timestamp

if TYPE_CHECKING:  # annotations only: the engine imports this module to serve ARI
    from agent.pbxsim.engine import PbxSim

log = get_logger("agent.pbxsim.ari")

_HTML_426 = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>426 Upgrade Required</title>\n'
    "</head><body>\n<h1>Upgrade Required</h1>\n<p></p>\n<hr />\n<address>Asterisk/23.4.1</address>\n</body></html>\n"
)


class EventSocket:
    """One connected ``/ari/events`` websocket: events are queued and written in order."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.transport = request.transport
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def send(self, event: dict[str, Any]) -> None:
        self.queue.put_nowait(event)

    async def flush(self) -> None:
        try:
            await asyncio.wait_for(self.queue.join(), 1.0)
        except TimeoutError:
            log.warning("event socket did not drain")

    async def pump(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                if not self.ws.closed:
                    await self.ws.send_str(json.dumps(event))
            except (ConnectionError, RuntimeError):
                pass  # the client went away; the reader side ends the connection
            finally:
                self.queue.task_done()

    def abort(self) -> None:
        """Like a dead Asterisk: the TCP connection goes without a close frame (client sees 1006)."""
        if self.transport is not None:
            self.transport.abort()


class Ari(ChannelRoutes, BridgeRoutes):
    """Request handlers over one ``PbxSim``: every resource's, and here the small read-only ones
    and the events websocket."""

    # ---- asterisk, applications, endpoints, device states ---------------------------------------

    async def asterisk_info(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        start = ari_timestamp(self.sim._startup_s)
        return json_response(
            {
                "build": {
                    "os": "Linux",
                    "kernel": "pbxsim",
                    "machine": "x86_64",
                    "options": "",
                    "date": start,
                    "user": "pbxsim",
                },
                "system": {"version": "23.4.1", "entity_id": ASTERISK_ID},
                "config": {
                    "name": "",
                    "default_language": "en",
                    "setid": {"user": "", "group": ""},
                },
                "status": {"startup_time": start, "last_reload_time": start},
            }
        )

    async def asterisk_ping(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return json_response(
            {"ping": "pong", "timestamp": ari_timestamp(self.sim.now()), "asterisk_id": ASTERISK_ID}
        )

    def _application(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "channel_ids": [
                c.snap.id for c in self.sim.channels.values() if c.in_stasis and c.app == name
            ],
            "bridge_ids": [b.snap.id for b in self.sim.bridges.values() if b.app == name],
            "endpoint_ids": [],
            "device_names": [],
            "events_allowed": [],
            "events_disallowed": [],
        }

    async def applications(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return json_response([self._application(a) for a in sorted(self.sim.known_apps)])

    async def application(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        name = r.match_info["applicationName"]
        # Recorded: after its websocket dropped the app is still listed with its channels;
        # it is only inactive (a new Stasis() call for it falls through).
        if name not in self.sim.known_apps:
            raise RestError(404, "Application not found")
        return json_response(self._application(name))

    def _endpoint(self, name: str) -> dict[str, Any]:
        phone = self.sim.phones[name]
        return {
            "technology": "PJSIP",
            "resource": name,
            "state": "offline" if phone.behaviour == "unavailable" else "online",
            "channel_ids": [
                c.snap.id for c in self.sim.channels.values() if c.phone is phone and not c.hungup
            ],
        }

    async def endpoints(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return json_response([self._endpoint(n) for n in self.sim.phones])

    async def endpoints_by_tech(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        if r.match_info["tech"].upper() != "PJSIP":
            raise RestError(404, "No Endpoints found - invalid tech " + r.match_info["tech"])
        return json_response([self._endpoint(n) for n in self.sim.phones])

    async def endpoint(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        tech, res = r.match_info["tech"], r.match_info["resource"]
        if tech.upper() != "PJSIP" or res not in self.sim.phones:
            raise RestError(404, "Endpoint not found")
        return json_response(self._endpoint(res))

    async def device_states(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return json_response(
            [{"name": ph.endpoint, "state": ph.device_state()} for ph in self.sim.phones.values()]
        )

    async def device_state(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        name = r.match_info["deviceName"]
        phone = self.sim.phone_for_endpoint(name)
        return json_response({"name": name, "state": phone.device_state() if phone else "UNKNOWN"})

    # ---- events websocket -----------------------------------------------------------------------

    async def events(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        apps = [a for a in p.get("app", "").split(",") if a]
        if not apps:
            raise RestError(400, "Missing parameter app")
        if r.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=426, text=_HTML_426, content_type="text/html")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(r)
        sock = EventSocket(ws, r)
        for app in apps:
            # events.json, ApplicationReplaced: "the newer WebSocket wins, and the older one
            # receives this event" (and nothing more for that app).
            for old in self.sim.connections.get(app, []):
                old.send(
                    {
                        "type": "ApplicationReplaced",
                        "timestamp": ari_timestamp(self.sim.now()),
                        "asterisk_id": ASTERISK_ID,
                        "application": app,
                    }
                )
            self.sim.connections[app] = [sock]
            self.sim.known_apps.add(app)
        await self.sim.apps_changed()
        log.info("events websocket connected", apps=apps)
        pump = asyncio.get_running_loop().create_task(
            sock.pump(), name=f"pbxsim:events:{','.join(apps)}"
        )
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            for app in apps:
                conns = self.sim.connections.get(app, [])
                if sock in conns:
                    conns.remove(sock)
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            log.info("events websocket closed", apps=apps)
        return ws


ROUTES: tuple[Route, ...] = (
    Route("GET", "/asterisk/info", Ari.asterisk_info, ("only",)),
    Route("GET", "/asterisk/ping", Ari.asterisk_ping),
    Route("GET", "/applications", Ari.applications),
    Route("GET", "/applications/{applicationName}", Ari.application),
    Route("GET", "/endpoints", Ari.endpoints),
    Route("GET", "/endpoints/{tech}", Ari.endpoints_by_tech),
    Route("GET", "/endpoints/{tech}/{resource}", Ari.endpoint),
    Route("GET", "/deviceStates", Ari.device_states),
    Route("GET", "/deviceStates/{deviceName}", Ari.device_state),
    *CHANNEL_ROUTES,
    *BRIDGE_ROUTES,
    *PLAYBACK_ROUTES,
    Route("GET", "/events", Ari.events, ("app", "subscribeAll")),
)
"""Every route served, in the order the router tries them (``/channels/create`` before
``/channels/{channelId}``)."""


def _authorized(r: web.Request, username: str, password: str) -> bool:
    header = r.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == username and pw == password
    api_key = r.query.get("api_key")
    if api_key is not None:
        user, _, pw = api_key.partition(":")
        return user == username and pw == password
    return False


class AriServer:
    """The aiohttp application and its runner; ``stop``/``start`` rebinds the same port."""

    def __init__(self, sim: PbxSim) -> None:
        self.sim = sim
        self.handlers = Ari(sim)
        self.app = self._build()
        self.runner: web.AppRunner | None = None
        self.port = 0

    def _build(self) -> web.Application:
        @web.middleware
        async def middleware(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            return await self._middleware(request, handler)

        app = web.Application(middlewares=[middleware])
        for route in ROUTES:
            # Device names contain a slash (PJSIP/frontdesk), so that variable spans segments.
            path = route.path.replace("{deviceName}", "{deviceName:.+}")
            app.router.add_route(route.method, "/ari" + path, self._wrap(route))
        return app

    def _wrap(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        handlers = self.handlers

        async def handle(r: web.Request) -> web.StreamResponse:
            body: dict[str, Any] = {}
            if r.can_read_body:
                try:
                    data = await r.json()
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise RestError(400, "Invalid JSON body") from None
                if isinstance(data, dict):
                    body = data
            params: Params = {k: v for k, v in r.query.items() if k != "api_key"}
            # ARI accepts query parameters in a JSON body too.
            for k, v in body.items():
                if k != "variables" and k not in params and not isinstance(v, dict | list):
                    params[k] = str(v).lower() if isinstance(v, bool) else str(v)
            return await route.handler(handlers, r, params, body)

        handle.__name__ = route.handler.__name__
        return handle

    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        cfg = self.sim.config
        if not _authorized(request, cfg.username, cfg.password):
            resp = json_response({"message": "Authentication required"}, 401)
            resp.headers["WWW-Authenticate"] = 'Basic realm="Asterisk REST Interface"'
            return resp
        try:
            return await handler(request)
        except RestError as exc:
            return json_response(exc.body, exc.status)
        except web.HTTPNotFound:
            return json_response({"message": "Resource not found"}, 404)
        except web.HTTPMethodNotAllowed:
            return json_response({"message": "Invalid method"}, 405)

    async def start(self, host: str, port: int) -> int:
        self.app = self._build()  # an aiohttp app cannot be set up again after cleanup
        self.runner = web.AppRunner(
            self.app, handle_signals=False, shutdown_timeout=0.5, access_log=None
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port or self.port or 0, reuse_address=True)
        await site.start()
        # aiohttp does not expose the bound port of port 0; the asyncio server does.
        sockets = getattr(site._server, "sockets", None)
        assert sockets
        self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def drop_websockets(self, close_frame: bool) -> None:
        for conns in list(self.sim.connections.values()):
            for sock in list(conns):
                if close_frame:
                    await sock.ws.close()
                else:
                    sock.abort()
        await asyncio.sleep(0)

    async def stop(self) -> None:
        await self.drop_websockets(close_frame=False)
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
