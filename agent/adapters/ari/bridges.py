"""ARI's ``/bridges`` and ``/playbacks``: the mixing bridge a call lives in, and what plays into it.

Playback sits with bridges because the agent plays on the call's bridge while it listens: a
playback on the caller's channel would stop the caller's audio reaching externalMedia.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.adapters.ari.models import Bridge, Playback
from agent.adapters.ari.rest import AriRest, csv, seg


class BridgeOperations(AriRest):
    """The ``/bridges`` and ``/playbacks`` calls; :class:`~agent.adapters.ari.client.AriClient`
    inherits them."""

    async def create_bridge(
        self, type: str = "mixing", bridge_id: str | None = None, name: str | None = None
    ) -> Bridge:
        params = {"type": type, "bridgeId": bridge_id, "name": name}
        return await self._post_model(Bridge, "/bridges", params)

    async def get_bridge(self, bridge_id: str) -> Bridge:
        return await self._get_model(Bridge, f"/bridges/{seg(bridge_id)}")

    async def add_channel(
        self, bridge_id: str, channel_ids: str | Sequence[str], *, role: str | None = None
    ) -> None:
        """Unknown channel: 400 "Channel not found"; a channel not in Stasis (or whose
        ``StasisStart`` has not happened yet): 422."""
        params = {"channel": csv(channel_ids), "role": role}
        await self._request("POST", f"/bridges/{seg(bridge_id)}/addChannel", params)

    async def remove_channel(self, bridge_id: str, channel_ids: str | Sequence[str]) -> None:
        await self._request(
            "POST", f"/bridges/{seg(bridge_id)}/removeChannel", {"channel": csv(channel_ids)}
        )

    async def list_bridges(self) -> list[Bridge]:
        return await self._get_list(Bridge, "/bridges")

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._request("DELETE", f"/bridges/{seg(bridge_id)}")

    # -- playbacks ---------------------------------------------------------------------------

    async def play(
        self,
        media: str | Sequence[str],
        *,
        channel_id: str | None = None,
        bridge_id: str | None = None,
        playback_id: str | None = None,
        lang: str | None = None,
    ) -> Playback:
        """Play on a channel or a bridge (exactly one). Prefer the bridge while listening to the
        caller: a channel playback stops the caller's audio reaching externalMedia."""
        if (channel_id is None) == (bridge_id is None):
            raise ValueError("play: give exactly one of channel_id and bridge_id")
        target = (
            f"/channels/{seg(channel_id)}"
            if channel_id is not None
            else f"/bridges/{seg(bridge_id or '')}"
        )
        params = {"media": csv(media), "lang": lang, "playbackId": playback_id}
        return await self._post_model(Playback, f"{target}/play", params)

    async def get_playback(self, playback_id: str) -> Playback:
        return await self._get_model(Playback, f"/playbacks/{seg(playback_id)}")

    async def stop_playback(self, playback_id: str) -> None:
        """Stop a playback. A finished playback is gone: that is ``AriNotFound``."""
        await self._request("DELETE", f"/playbacks/{seg(playback_id)}")
