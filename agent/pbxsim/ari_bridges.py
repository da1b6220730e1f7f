"""ARI ``/bridges`` and ``/playbacks``: make and destroy bridges, move channels in and out, play
into a bridge, and look up or stop any playback.

Mixing and forwarding are ``bridging.py``'s, playing ``playback.py``'s; these handlers check the
request as Asterisk does and answer with the recorded status and body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent.pbxsim.ari_rest import Params, Resource, Route, json_response, no_content
from agent.pbxsim.model import NOT_IN_STASIS, BridgeSnapshot, RestError, SimBridge

if TYPE_CHECKING:  # annotations only: the engine imports ari.py, which imports this module
    from agent.pbxsim.engine import PbxSim
    from agent.pbxsim.model import SimChannel

_BRIDGE_TYPES = {
    "mixing",
    "holding",
    "dtmf_events",
    "proxy_media",
    "video_sfu",
    "video_single",
    "sdp_label",
}


class BridgeRoutes(Resource):
    """The ``/bridges`` and ``/playbacks`` resources."""

    async def list_bridges(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return json_response([b.json() for b in self.sim.bridges.values()])

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
        return json_response(br.json())

    async def get_bridge(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        return json_response(self.bridge(r.match_info["bridgeId"]).json())

    async def destroy_bridge(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        self.sim.bridging.destroy(self.bridge(r.match_info["bridgeId"]))
        return no_content()

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
        return no_content()

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
        return no_content()

    async def bridge_play(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        br = self.bridge(r.match_info["bridgeId"])
        media = p.get("media", "")
        if not media:
            raise RestError(400, "Missing parameter media")
        pid = r.match_info.get("playbackId") or p.get("playbackId") or None
        pb = self.sim.player.play_on_bridge(br, br.app, media, pid, p.get("lang", ""))
        return json_response(pb.snap.to_json(), 201)

    # ---- playbacks ------------------------------------------------------------------------------

    async def get_playback(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        pb = self.sim.playbacks.get(r.match_info["playbackId"])
        if pb is None:
            raise RestError(404, "Playback not found")
        return json_response(pb.snap.to_json())

    async def stop_playback(
        self, r: web.Request, p: Params, body: dict[str, Any]
    ) -> web.StreamResponse:
        pb = self.sim.playbacks.get(r.match_info["playbackId"])
        if pb is None:
            raise RestError(404, "Playback not found")
        self.sim.player.stop_playback(pb)
        return no_content()


def _app_of(r: web.Request, sim: PbxSim) -> str:
    """Bridges belong to the app that made them; the only connected app is the best guess."""
    connected = [a for a, c in sim.connections.items() if c]
    return connected[0] if len(connected) == 1 else sim.config.app


BRIDGE_ROUTES: tuple[Route, ...] = (
    Route("GET", "/bridges", BridgeRoutes.list_bridges),
    Route("POST", "/bridges", BridgeRoutes.create_bridge, ("type", "bridgeId", "name")),
    Route("POST", "/bridges/{bridgeId}", BridgeRoutes.create_bridge, ("type", "name")),
    Route("GET", "/bridges/{bridgeId}", BridgeRoutes.get_bridge),
    Route("DELETE", "/bridges/{bridgeId}", BridgeRoutes.destroy_bridge),
    Route("POST", "/bridges/{bridgeId}/addChannel", BridgeRoutes.add_channel, ("channel",)),
    Route("POST", "/bridges/{bridgeId}/removeChannel", BridgeRoutes.remove_channel, ("channel",)),
    Route(
        "POST",
        "/bridges/{bridgeId}/play",
        BridgeRoutes.bridge_play,
        ("media", "lang", "playbackId"),
    ),
    Route(
        "POST", "/bridges/{bridgeId}/play/{playbackId}", BridgeRoutes.bridge_play, ("media", "lang")
    ),
)
PLAYBACK_ROUTES: tuple[Route, ...] = (
    Route("GET", "/playbacks/{playbackId}", BridgeRoutes.get_playback),
    Route("DELETE", "/playbacks/{playbackId}", BridgeRoutes.stop_playback),
)
