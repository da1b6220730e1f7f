"""ARI ``/channels``: list, originate, create, externalMedia, and what the agent does to a channel
(answer, play, hold music, DTMF, variables, continue, redirect, dial, hang up).

The work is the engine's (``originate.py``, ``playback.py``, the façade's hangup and continue);
these handlers check the request as Asterisk does and answer with the recorded status and body.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from agent.pbxsim.ari_rest import (
    Params,
    Resource,
    Route,
    int_param,
    json_response,
    no_content,
    variables,
)
from agent.pbxsim.dialplan import Target
from agent.pbxsim.model import HANGUP_REASONS, NOT_IN_STASIS, Party, RestError

_INTERNAL = "An internal error prevented this request from being handled"
_KNOWN_FORMATS = {"ulaw", "alaw", "slin", "slin16", "slin48", "g722", "gsm", "g729", "opus", "ilbc"}


class ChannelRoutes(Resource):
    """The ``/channels`` resource."""

    async def list_channels(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return json_response([c.snap.to_json() for c in self.sim.channels.values()])

    async def get_channel(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return json_response(self.channel(r.match_info["channelId"]).snap.to_json())

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
        ch.vars.update(variables(body))
        args = [a for a in p.get("appArgs", "").split(",") if a] if p.get("appArgs") else []
        timeout = float(int_param(p, "timeout", 30))
        snapshot = ch.snap.to_json()
        if app:
            ch.dial_task = self.sim.spawn(
                self.sim.originator.originate(ch, app, args, timeout), f"originate:{ch.snap.id}"
            )
        else:
            target = Target(
                p.get("context", "default"), p.get("extension", "s"), int_param(p, "priority", 1)
            )
            ch.dial_task = self.sim.spawn(
                self.sim.originator.originate_to_dialplan(ch, target, timeout),
                f"originate:{ch.snap.id}",
            )
        return json_response(snapshot)

    async def create(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        phone, caller = self._originate_target(p)
        app = p.get("app", "")
        if not app:
            raise RestError(400, "app cannot be empty")
        ch = self.sim.originator.create_phone_channel(
            phone, channel_id=p.get("channelId") or None, caller=caller
        )
        ch.vars.update(variables(body))
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
        return json_response(snapshot)

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
            variables=variables(body),
        )
        snap = ch.snap.to_json()
        snap["channelvars"] = {
            "UNICASTRTP_LOCAL_ADDRESS": ch.vars["UNICASTRTP_LOCAL_ADDRESS"],
            "UNICASTRTP_LOCAL_PORT": ch.vars["UNICASTRTP_LOCAL_PORT"],
        }
        return json_response(snap)

    async def hangup(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        ch = self.channel(r.match_info["channelId"])
        reason = p.get("reason", "")
        if reason and reason not in HANGUP_REASONS:
            raise RestError(400, "Invalid reason for hangup provided")
        cause = HANGUP_REASONS[reason] if reason else int_param(p, "reason_code", 16)
        await self.sim.hangup(ch, by="agent", cause=32, soft=True, destroyed_cause=cause)
        return no_content()

    async def answer(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        ch = self.stasis_channel(r.match_info["channelId"])
        self.sim.set_state(ch, "Up")
        await self.sim.flush_events()
        return no_content()

    async def ring(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        self.stasis_channel(r.match_info["channelId"])
        return no_content()

    async def dial(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        ch = self.stasis_channel(r.match_info["channelId"])
        if ch.phone is None or ch.snap.state != "Down":
            raise RestError(409, "Channel is not in the Down state")
        caller_id = p.get("caller")
        if caller_id:
            self.channel(caller_id)
        timeout = float(int_param(p, "timeout", 0))
        ch.dial_task = self.sim.spawn(
            self.sim.originator.ari_dial(ch, timeout), f"dial:{ch.snap.id}"
        )
        return no_content()

    async def play(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        ch = self.channel(r.match_info["channelId"])
        media = p.get("media", "")
        if not media:
            raise RestError(400, "Missing parameter media")
        if not ch.in_stasis:
            raise RestError(409, NOT_IN_STASIS)
        pid = r.match_info.get("playbackId") or p.get("playbackId") or None
        pb = self.sim.player.play_on_channel(ch, ch.app or "", media, pid, p.get("lang", ""))
        return json_response(pb.snap.to_json(), 201)

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
            prio = int_param(p, "priority", 1)
        elif p.get("context") or p.get("extension"):
            prio = 1
        else:
            prio = loc.priority + 1
        self.sim.spawn(
            self.sim.continue_in_dialplan(ch, Target(context, exten, prio)),
            f"continue:{ch.snap.id}",
        )
        return no_content()

    async def redirect(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        ch = self.channel(r.match_info["channelId"])
        endpoint = p.get("endpoint", "")
        if not endpoint:
            raise RestError(400, "Required parameter 'endpoint' not provided")
        if not ch.in_stasis:
            raise RestError(409, NOT_IN_STASIS)
        self.sim.spawn(self.sim.redirect(ch, endpoint), f"redirect:{ch.snap.id}")
        return no_content()

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
            return json_response({"value": ch.snap.state})
        if name not in ch.vars:
            raise RestError(404, "Provided variable was not found")
        return json_response({"value": ch.vars[name]})

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
        return no_content()

    async def dtmf(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        ch = self.stasis_channel(r.match_info["channelId"])
        if not p.get("dtmf"):
            raise RestError(400, "DTMF is required")
        if ch.leg is not None:
            ch.leg.dtmf_heard.extend(p["dtmf"])
        return no_content()

    async def moh_start(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        self.sim.player.start_moh(self.stasis_channel(r.match_info["channelId"]))
        return no_content()

    async def moh_stop(self, r: web.Request, p: Params, body: dict[str, Any]) -> web.StreamResponse:
        self.sim.player.stop_moh(self.stasis_channel(r.match_info["channelId"]))
        return no_content()


CHANNEL_ROUTES: tuple[Route, ...] = (
    Route("GET", "/channels", ChannelRoutes.list_channels),
    Route(
        "POST",
        "/channels",
        ChannelRoutes.originate,
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
        ChannelRoutes.create,
        ("endpoint", "app", "appArgs", "channelId", "originator", "variables"),
    ),
    Route(
        "POST",
        "/channels/externalMedia",
        ChannelRoutes.external_media,
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
    Route("GET", "/channels/{channelId}", ChannelRoutes.get_channel),
    Route(
        "POST",
        "/channels/{channelId}",
        ChannelRoutes.originate,
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
    Route("DELETE", "/channels/{channelId}", ChannelRoutes.hangup, ("reason_code", "reason")),
    Route(
        "POST",
        "/channels/{channelId}/continue",
        ChannelRoutes.continue_,
        ("context", "extension", "priority", "label"),
    ),
    Route("POST", "/channels/{channelId}/redirect", ChannelRoutes.redirect, ("endpoint",)),
    Route("POST", "/channels/{channelId}/answer", ChannelRoutes.answer),
    Route("POST", "/channels/{channelId}/ring", ChannelRoutes.ring),
    Route("DELETE", "/channels/{channelId}/ring", ChannelRoutes.ring),
    Route(
        "POST",
        "/channels/{channelId}/dtmf",
        ChannelRoutes.dtmf,
        ("dtmf", "before", "between", "duration", "after"),
    ),
    Route("POST", "/channels/{channelId}/moh", ChannelRoutes.moh_start, ("mohClass",)),
    Route("DELETE", "/channels/{channelId}/moh", ChannelRoutes.moh_stop),
    Route(
        "POST", "/channels/{channelId}/play", ChannelRoutes.play, ("media", "lang", "playbackId")
    ),
    Route("POST", "/channels/{channelId}/play/{playbackId}", ChannelRoutes.play, ("media", "lang")),
    Route("GET", "/channels/{channelId}/variable", ChannelRoutes.get_variable, ("variable",)),
    Route(
        "POST", "/channels/{channelId}/variable", ChannelRoutes.set_variable, ("variable", "value")
    ),
    Route("POST", "/channels/{channelId}/dial", ChannelRoutes.dial, ("caller", "timeout")),
)
