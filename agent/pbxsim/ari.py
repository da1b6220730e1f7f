"""The stand-in's ARI surface: REST routes and the events websocket, on aiohttp.

One table (``ROUTES``) lists every method, path and query parameter served; paths and parameter
names are Asterisk's own (``ari-api-docs``), which the conformance test checks by introspecting
this table and the router. Status codes and bodies are the recorded ones (``traces/*.jsonl``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from agent.log import get_logger
from agent.pbxsim.dialplan import Target
from agent.pbxsim.model import (
    ASTERISK_ID,
    HANGUP_REASONS,
    NOT_IN_STASIS,
    BridgeSnapshot,
    Party,
    RestError,
    SimBridge,
    ari_timestamp,
)

if TYPE_CHECKING:  # annotations only: the engine imports this module to serve ARI
    from agent.pbxsim.engine import PbxSim
    from agent.pbxsim.model import SimChannel

log = get_logger("agent.pbxsim.ari")

Params = dict[str, str]
HandlerFn = Callable[["Ari", web.Request, Params, dict[str, Any]], Awaitable[web.StreamResponse]]

_INTERNAL = "An internal error prevented this request from being handled"
_KNOWN_FORMATS = {"ulaw", "alaw", "slin", "slin16", "slin48", "g722", "gsm", "g729", "opus", "ilbc"}
_BRIDGE_TYPES = {
    "mixing",
    "holding",
    "dtmf_events",
    "proxy_media",
    "video_sfu",
    "video_single",
    "sdp_label",
}
_HTML_426 = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>426 Upgrade Required</title>\n'
    "</head><body>\n<h1>Upgrade Required</h1>\n<p></p>\n<hr />\n<address>Asterisk/23.4.1</address>\n</body></html>\n"
)


def _json(body: Any, status: int = 200) -> web.Response:
    # Asterisk sends "Content-type: application/json" with no charset (ari_http_raw.txt);
    # bytes keep aiohttp from adding one. Header names match case-insensitively.
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        headers={"Cache-Control": "no-cache, no-store", "Server": "Asterisk/23.4.1"},
    )


def _no_content() -> web.Response:
    return web.Response(
        status=204, headers={"Cache-Control": "no-cache, no-store", "Server": "Asterisk/23.4.1"}
    )


def _int(params: Params, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise RestError(400, f"{name}: invalid value {raw!r}, expected an integer") from None


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


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: HandlerFn
    params: tuple[str, ...] = ()
    """Query (or JSON body) parameters this route reads, named as in the api-docs."""


class Ari:
    """Request handlers over one ``PbxSim``."""

    def __init__(self, sim: PbxSim) -> None:
        self.sim = sim

    # ---- helpers --------------------------------------------------------------------------------

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

    # ---- asterisk, applications, endpoints, device states ---------------------------------------

    async def asterisk_info(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        start = ari_timestamp(self.sim._startup_s)
        return _json(
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
        return _json(
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
        return _json([self._application(a) for a in sorted(self.sim.known_apps)])

    async def application(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        name = r.match_info["applicationName"]
        # Recorded: after its websocket dropped the app is still listed with its channels;
        # it is only inactive (a new Stasis() call for it falls through).
        if name not in self.sim.known_apps:
            raise RestError(404, "Application not found")
        return _json(self._application(name))

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
        return _json([self._endpoint(n) for n in self.sim.phones])

    async def endpoints_by_tech(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        if r.match_info["tech"].upper() != "PJSIP":
            raise RestError(404, "No Endpoints found - invalid tech " + r.match_info["tech"])
        return _json([self._endpoint(n) for n in self.sim.phones])

    async def endpoint(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        tech, res = r.match_info["tech"], r.match_info["resource"]
        if tech.upper() != "PJSIP" or res not in self.sim.phones:
            raise RestError(404, "Endpoint not found")
        return _json(self._endpoint(res))

    async def device_states(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return _json(
            [{"name": ph.endpoint, "state": ph.device_state()} for ph in self.sim.phones.values()]
        )

    async def device_state(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        name = r.match_info["deviceName"]
        phone = self.sim.phone_for_endpoint(name)
        return _json({"name": name, "state": phone.device_state() if phone else "UNKNOWN"})

    # ---- channels -------------------------------------------------------------------------------

    async def list_channels(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return _json([c.snap.to_json() for c in self.sim.channels.values()])

    async def get_channel(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return _json(self.channel(r.match_info["channelId"]).snap.to_json())

    def _originate_target(self, p: Params) -> tuple[Any, Party]:
        endpoint = p.get("endpoint", "")
        if not endpoint:
            raise RestError(400, "Endpoint must be specified")
        phone = self.sim.phone_for_endpoint(endpoint)
        if phone is None or phone.behaviour == "unavailable":
            raise RestError(500, "Allocation failed", key="error")
        caller = Party()
        cid = p.get("callerId", "")
        if cid:
            name, _, rest = cid.partition("<")
            caller = (
                Party(name.strip(), rest.rstrip(">").strip()) if rest else Party("", cid.strip())
            )
        return phone, caller

    async def originate(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        channel_id = r.match_info.get("channelId") or p.get("channelId") or None
        phone, caller = self._originate_target(p)
        app = p.get("app", "")
        if not app and not p.get("extension"):
            raise RestError(400, "Application or extension must be specified")
        ch = self.sim.originator.create_phone_channel(phone, channel_id=channel_id, caller=caller)
        ch.app = app or None
        ch.snap.dialplan.app_name, ch.snap.dialplan.app_data = "AppDial2", "(Outgoing Line)"
        ch.vars.update(_variables(body))
        args = [a for a in p.get("appArgs", "").split(",") if a] if p.get("appArgs") else []
        timeout = float(_int(p, "timeout", 30))
        snapshot = ch.snap.to_json()
        if app:
            ch.dial_task = self.sim.spawn(
                self.sim.originator.originate(ch, app, args, timeout), f"originate:{ch.snap.id}"
            )
        else:
            target = Target(
                p.get("context", "default"), p.get("extension", "s"), _int(p, "priority", 1)
            )
            ch.dial_task = self.sim.spawn(
                self.sim.originator.originate_to_dialplan(ch, target, timeout),
                f"originate:{ch.snap.id}",
            )
        return _json(snapshot)

    async def create(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        phone, caller = self._originate_target(p)
        app = p.get("app", "")
        if not app:
            raise RestError(400, "app cannot be empty")
        ch = self.sim.originator.create_phone_channel(
            phone, channel_id=p.get("channelId") or None, caller=caller
        )
        ch.vars.update(_variables(body))
        args = [a for a in p.get("appArgs", "").split(",") if a]
        snapshot = ch.snap.to_json()
        ch.app = app
        data = ",".join([app, *args])
        ch.snap.dialplan.app_name, ch.snap.dialplan.app_data = "Stasis", data
        # Recorded: ChannelDialplan(Stasis) then StasisStart(Down), before the response.
        self.sim.emit_channel(ch, "ChannelDialplan", dialplan_app="Stasis", dialplan_app_data=data)
        ch.dial_task = self.sim.spawn(
            self.sim.originator.created_in_stasis(ch, app, args), f"create:{ch.snap.id}"
        )
        await asyncio.sleep(0)
        return _json(snapshot)

    async def external_media(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        app = p.get("app", "")
        host = p.get("external_host", "")
        fmt = p.get("format", "")
        if not app:
            raise RestError(400, "app cannot be empty")
        if not host:
            raise RestError(
                400, "external_host is required for all but websocket server connections"
            )
        if not fmt:
            raise RestError(400, "format cannot be empty")
        if fmt not in _KNOWN_FORMATS:
            raise RestError(500, _INTERNAL)
        if p.get("encapsulation", "rtp") != "rtp" or p.get("transport", "udp") != "udp":
            raise RestError(501, "The encapsulation and/or transport is not supported")
        if fmt != "ulaw":
            # The stand-in only speaks μ-law; say so rather than send the wrong audio.
            raise RestError(501, "The encapsulation and/or transport is not supported")
        h, _, port = host.rpartition(":")
        if not h or not port.isdigit():
            raise RestError(400, "external_host must be host:port")
        ch = await self.sim.originator.external_media(
            app=app,
            remote=(h, int(port)),
            external_host=host,
            channel_id=p.get("channelId") or None,
            variables=_variables(body),
        )
        snap = ch.snap.to_json()
        snap["channelvars"] = {
            "UNICASTRTP_LOCAL_ADDRESS": ch.vars["UNICASTRTP_LOCAL_ADDRESS"],
            "UNICASTRTP_LOCAL_PORT": ch.vars["UNICASTRTP_LOCAL_PORT"],
        }
        return _json(snap)

    async def hangup(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        ch = self.channel(r.match_info["channelId"])
        reason = p.get("reason", "")
        if reason and reason not in HANGUP_REASONS:
            raise RestError(400, "Invalid reason for hangup provided")
        cause = HANGUP_REASONS[reason] if reason else _int(p, "reason_code", 16)
        await self.sim.hangup(ch, by="agent", cause=32, soft=True, destroyed_cause=cause)
        return _no_content()

    async def answer(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        ch = self.stasis_channel(r.match_info["channelId"])
        self.sim.set_state(ch, "Up")
        await self.sim.flush_events()
        return _no_content()

    async def ring(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        self.stasis_channel(r.match_info["channelId"])
        return _no_content()

    async def dial(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        ch = self.stasis_channel(r.match_info["channelId"])
        if ch.phone is None or ch.snap.state != "Down":
            raise RestError(409, "Channel is not in the Down state")
        caller_id = p.get("caller")
        if caller_id:
            self.channel(caller_id)
        timeout = float(_int(p, "timeout", 0))
        ch.dial_task = self.sim.spawn(
            self.sim.originator.ari_dial(ch, timeout), f"dial:{ch.snap.id}"
        )
        return _no_content()

    async def play(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        ch = self.channel(r.match_info["channelId"])
        media = p.get("media", "")
        if not media:
            raise RestError(400, "Missing parameter media")
        if not ch.in_stasis:
            raise RestError(409, NOT_IN_STASIS)
        pid = r.match_info.get("playbackId") or p.get("playbackId") or None
        pb = self.sim.player.play_on_channel(ch, ch.app or "", media, pid, p.get("lang", ""))
        return _json(pb.snap.to_json(), 201)

    async def continue_(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        ch = self.stasis_channel(r.match_info["channelId"])
        loc = ch.snap.dialplan
        context = p.get("context") or loc.context
        exten = p.get("extension") or loc.exten
        if p.get("label"):
            prio = self.sim.dialplan.label_priority(context, exten, p["label"])
            if prio is None:
                raise RestError(404, "Requested label cannot be found")
        elif p.get("priority"):
            prio = _int(p, "priority", 1)
        elif p.get("context") or p.get("extension"):
            prio = 1
        else:
            prio = loc.priority + 1
        self.sim.spawn(
            self.sim.continue_in_dialplan(ch, Target(context, exten, prio)),
            f"continue:{ch.snap.id}",
        )
        return _no_content()

    async def redirect(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        ch = self.channel(r.match_info["channelId"])
        endpoint = p.get("endpoint", "")
        if not endpoint:
            raise RestError(400, "Required parameter 'endpoint' not provided")
        if not ch.in_stasis:
            raise RestError(409, NOT_IN_STASIS)
        self.sim.spawn(self.sim.redirect(ch, endpoint), f"redirect:{ch.snap.id}")
        return _no_content()

    async def get_variable(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        name = p.get("variable", "")
        if not name:
            raise RestError(400, "Variable name is required")
        ch = self.sim.channels.get(r.match_info["channelId"])
        if ch is None:
            raise RestError(404, "Provided channel was not found")
        if name == "CHANNEL(state)":
            return _json({"value": ch.snap.state})
        if name not in ch.vars:
            raise RestError(404, "Provided variable was not found")
        return _json({"value": ch.vars[name]})

    async def set_variable(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        name = p.get("variable", "")
        if not name:
            raise RestError(400, "Variable name is required")
        ch = self.sim.channels.get(r.match_info["channelId"])
        if ch is None:
            raise RestError(404, "Provided channel was not found")
        ch.vars[name] = p.get("value", "")
        return _no_content()

    async def dtmf(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        ch = self.stasis_channel(r.match_info["channelId"])
        if not p.get("dtmf"):
            raise RestError(400, "DTMF is required")
        if ch.leg is not None:
            ch.leg.dtmf_heard.extend(p["dtmf"])
        return _no_content()

    async def moh_start(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        self.sim.player.start_moh(self.stasis_channel(r.match_info["channelId"]))
        return _no_content()

    async def moh_stop(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        self.sim.player.stop_moh(self.stasis_channel(r.match_info["channelId"]))
        return _no_content()

    # ---- bridges --------------------------------------------------------------------------------

    async def list_bridges(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return _json([b.json() for b in self.sim.bridges.values()])

    async def create_bridge(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        types = [t for t in p.get("type", "mixing").split(",") if t]
        bid = r.match_info.get("bridgeId") or p.get("bridgeId") or self.sim.uuid()
        if any(t not in _BRIDGE_TYPES for t in types) or bid in self.sim.bridges:
            raise RestError(
                500,
                f"Unable to create bridge. Possible duplicate bridge id '{'(null)' if bid not in self.sim.bridges else bid}'",
            )
        app = _app_of(r, self.sim)
        br = SimBridge(
            BridgeSnapshot(bid, ",".join(types) or "mixing", p.get("name", ""), self.sim.now()), app
        )
        self.sim.bridges[bid] = br
        return _json(br.json())

    async def get_bridge(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return _json(self.bridge(r.match_info["bridgeId"]).json())

    async def destroy_bridge(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        self.sim.bridging.destroy(self.bridge(r.match_info["bridgeId"]))
        return _no_content()

    def _bridge_channels(self, r: web.Request, p: Params) -> tuple[SimBridge, list[SimChannel]]:
        br = self.bridge(r.match_info["bridgeId"])
        ids = [c for c in p.get("channel", "").split(",") if c]
        if not ids:
            raise RestError(400, "Missing parameter channel")
        chans = []
        for cid in ids:
            ch = self.sim.channels.get(cid)
            if ch is None:
                raise RestError(400, "Channel not found")
            chans.append(ch)
        return br, chans

    async def add_channel(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        br, chans = self._bridge_channels(r, p)
        if any(not c.in_stasis for c in chans):
            raise RestError(422, NOT_IN_STASIS)
        for ch in chans:
            self.sim.bridging.add(br, ch)
        # Recorded: ChannelEnteredBridge reaches the app before the 204.
        await self.sim.flush_events()
        return _no_content()

    async def remove_channel(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        br, chans = self._bridge_channels(r, p)
        for ch in chans:
            if ch.bridge is not br:
                raise RestError(422, "Channel not in this bridge")
        for ch in chans:
            self.sim.bridging.remove(br, ch)
        await self.sim.flush_events()
        return _no_content()

    async def bridge_play(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        br = self.bridge(r.match_info["bridgeId"])
        media = p.get("media", "")
        if not media:
            raise RestError(400, "Missing parameter media")
        pid = r.match_info.get("playbackId") or p.get("playbackId") or None
        pb = self.sim.player.play_on_bridge(br, br.app, media, pid, p.get("lang", ""))
        return _json(pb.snap.to_json(), 201)

    # ---- playbacks ------------------------------------------------------------------------------

    async def get_playback(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        pb = self.sim.playbacks.get(r.match_info["playbackId"])
        if pb is None:
            raise RestError(404, "Playback not found")
        return _json(pb.snap.to_json())

    async def stop_playback(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        pb = self.sim.playbacks.get(r.match_info["playbackId"])
        if pb is None:
            raise RestError(404, "Playback not found")
        self.sim.player.stop_playback(pb)
        return _no_content()

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


def _variables(body: dict[str, Any]) -> dict[str, str]:
    raw = body.get("variables")
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def _app_of(r: web.Request, sim: PbxSim) -> str:
    """Bridges belong to the app that made them; the only connected app is the best guess."""
    connected = [a for a, c in sim.connections.items() if c]
    return connected[0] if len(connected) == 1 else sim.config.app


A = Ari
ROUTES: tuple[Route, ...] = (
    Route("GET", "/asterisk/info", A.asterisk_info, ("only",)),
    Route("GET", "/asterisk/ping", A.asterisk_ping),
    Route("GET", "/applications", A.applications),
    Route("GET", "/applications/{applicationName}", A.application),
    Route("GET", "/endpoints", A.endpoints),
    Route("GET", "/endpoints/{tech}", A.endpoints_by_tech),
    Route("GET", "/endpoints/{tech}/{resource}", A.endpoint),
    Route("GET", "/deviceStates", A.device_states),
    Route("GET", "/deviceStates/{deviceName}", A.device_state),
    Route("GET", "/channels", A.list_channels),
    Route(
        "POST",
        "/channels",
        A.originate,
        (
            "endpoint",
            "extension",
            "context",
            "priority",
            "app",
            "appArgs",
            "callerId",
            "timeout",
            "variables",
            "channelId",
            "originator",
        ),
    ),
    Route(
        "POST",
        "/channels/create",
        A.create,
        ("endpoint", "app", "appArgs", "channelId", "originator", "variables"),
    ),
    Route(
        "POST",
        "/channels/externalMedia",
        A.external_media,
        (
            "channelId",
            "app",
            "variables",
            "external_host",
            "encapsulation",
            "transport",
            "connection_type",
            "format",
            "direction",
        ),
    ),
    Route("GET", "/channels/{channelId}", A.get_channel),
    Route(
        "POST",
        "/channels/{channelId}",
        A.originate,
        (
            "endpoint",
            "extension",
            "context",
            "priority",
            "app",
            "appArgs",
            "callerId",
            "timeout",
            "variables",
            "originator",
        ),
    ),
    Route("DELETE", "/channels/{channelId}", A.hangup, ("reason_code", "reason")),
    Route(
        "POST",
        "/channels/{channelId}/continue",
        A.continue_,
        ("context", "extension", "priority", "label"),
    ),
    Route("POST", "/channels/{channelId}/redirect", A.redirect, ("endpoint",)),
    Route("POST", "/channels/{channelId}/answer", A.answer),
    Route("POST", "/channels/{channelId}/ring", A.ring),
    Route("DELETE", "/channels/{channelId}/ring", A.ring),
    Route(
        "POST",
        "/channels/{channelId}/dtmf",
        A.dtmf,
        ("dtmf", "before", "between", "duration", "after"),
    ),
    Route("POST", "/channels/{channelId}/moh", A.moh_start, ("mohClass",)),
    Route("DELETE", "/channels/{channelId}/moh", A.moh_stop),
    Route("POST", "/channels/{channelId}/play", A.play, ("media", "lang", "playbackId")),
    Route("POST", "/channels/{channelId}/play/{playbackId}", A.play, ("media", "lang")),
    Route("GET", "/channels/{channelId}/variable", A.get_variable, ("variable",)),
    Route("POST", "/channels/{channelId}/variable", A.set_variable, ("variable", "value")),
    Route("POST", "/channels/{channelId}/dial", A.dial, ("caller", "timeout")),
    Route("GET", "/bridges", A.list_bridges),
    Route("POST", "/bridges", A.create_bridge, ("type", "bridgeId", "name")),
    Route("POST", "/bridges/{bridgeId}", A.create_bridge, ("type", "name")),
    Route("GET", "/bridges/{bridgeId}", A.get_bridge),
    Route("DELETE", "/bridges/{bridgeId}", A.destroy_bridge),
    Route("POST", "/bridges/{bridgeId}/addChannel", A.add_channel, ("channel",)),
    Route("POST", "/bridges/{bridgeId}/removeChannel", A.remove_channel, ("channel",)),
    Route("POST", "/bridges/{bridgeId}/play", A.bridge_play, ("media", "lang", "playbackId")),
    Route("POST", "/bridges/{bridgeId}/play/{playbackId}", A.bridge_play, ("media", "lang")),
    Route("GET", "/playbacks/{playbackId}", A.get_playback),
    Route("DELETE", "/playbacks/{playbackId}", A.stop_playback),
    Route("GET", "/events", A.events, ("app", "subscribeAll")),
)


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
            resp = _json({"message": "Authentication required"}, 401)
            resp.headers["WWW-Authenticate"] = 'Basic realm="Asterisk REST Interface"'
            return resp
        try:
            return await handler(request)
        except RestError as exc:
            return _json(exc.body, exc.status)
        except web.HTTPNotFound:
            return _json({"message": "Resource not found"}, 404)
        except web.HTTPMethodNotAllowed:
            return _json({"message": "Invalid method"}, 405)

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
