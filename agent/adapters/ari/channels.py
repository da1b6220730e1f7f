"""ARI's ``/channels`` resource: answer, hang up, dial, originate, externalMedia, variables, DTMF.

Parameter names are ARI's own (``channelId``, ``appArgs``, ``external_host``); ``app`` left out means
our application (``cfg.app``). The externalMedia channel's ``StasisStart`` arrives *after* the REST
answer, so waiting for it needs the events websocket: that is
:meth:`~agent.adapters.ari.client.AriClient.external_media_ready`, not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agent.adapters.ari.models import Channel
from agent.adapters.ari.rest import AriRest, csv, seg, variables_body
from agent.errors import AriError


class ChannelOperations(AriRest):
    """The ``/channels`` calls; :class:`~agent.adapters.ari.client.AriClient` inherits them."""

    async def list_channels(self) -> list[Channel]:
        return await self._get_list(Channel, "/channels")

    async def get_channel(self, channel_id: str) -> Channel:
        return await self._get_model(Channel, f"/channels/{seg(channel_id)}")

    async def answer(self, channel_id: str) -> None:
        await self._request("POST", f"/channels/{seg(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        """Indicate ringing to the caller (before answering)."""
        await self._request("POST", f"/channels/{seg(channel_id)}/ring")

    async def ring_stop(self, channel_id: str) -> None:
        await self._request("DELETE", f"/channels/{seg(channel_id)}/ring")

    async def hangup(
        self, channel_id: str, reason: str | None = "normal", *, reason_code: int | None = None
    ) -> None:
        """``reason``: ARI's names (normal, busy, congestion, no_answer …); ``reason_code``: a Q.850
        cause, which ARI prefers when both are given, so ``reason`` is then not sent."""
        params = {"reason_code": reason_code} if reason_code is not None else {"reason": reason}
        await self._request("DELETE", f"/channels/{seg(channel_id)}", params)

    async def external_media(
        self,
        app: str | None,
        external_host: str,
        format: str = "ulaw",
        encapsulation: str | None = "rtp",
        transport: str | None = "udp",
        direction: str | None = "both",
        channel_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """``POST /channels/externalMedia``. The returned channel carries
        ``channelvars['UNICASTRTP_LOCAL_ADDRESS'/'UNICASTRTP_LOCAL_PORT']`` (where to send RTP).
        Its ``StasisStart`` comes *after* this returns: use :meth:`external_media_ready` before
        adding it to a bridge. ``app`` None: ``cfg.app``."""
        params = {
            "app": app or self._cfg.app,
            "external_host": external_host,
            "format": format,
            "encapsulation": encapsulation,
            "transport": transport,
            "direction": direction,
            "channelId": channel_id,
        }
        return await self._post_model(
            Channel, "/channels/externalMedia", params, variables_body(variables)
        )

    async def create_channel(
        self,
        endpoint: str,
        app: str | None = None,
        app_args: str | Sequence[str] | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        formats: str | Sequence[str] | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """``POST /channels/create``: a channel in Stasis that is not dialed yet (then :meth:`dial`)."""
        params = {
            "endpoint": endpoint,
            "app": app or self._cfg.app,
            "appArgs": csv(app_args),
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "originator": originator,
            "formats": csv(formats),
        }
        return await self._post_model(
            Channel, "/channels/create", params, variables_body(variables)
        )

    async def dial(
        self,
        channel_id: str,
        caller: str | None = None,
        timeout: int | None = None,  # noqa: ASYNC109  # ARI's ringing time, not our deadline
    ) -> None:
        """Dial a created channel. ``timeout`` in seconds; ``caller``: the channel id whose
        caller id and connected line to use."""
        params = {"caller": caller, "timeout": timeout}
        await self._request("POST", f"/channels/{seg(channel_id)}/dial", params)

    async def originate(
        self,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: str | Sequence[str] | None = None,
        extension: str | None = None,
        context: str | None = None,
        priority: int | None = None,
        label: str | None = None,
        caller_id: str | None = None,
        timeout: int | None = None,  # noqa: ASYNC109  # ARI's ringing time, not our deadline
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        formats: str | Sequence[str] | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """``POST /channels``: create and dial at once, into ``app`` or a dialplan extension.
        ``timeout`` in seconds. An unreachable endpoint gives 500 "Allocation failed"."""
        params = {
            "endpoint": endpoint,
            "extension": extension,
            "context": context,
            "priority": priority,
            "label": label,
            "app": app,
            "appArgs": csv(app_args),
            "callerId": caller_id,
            "timeout": timeout,
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "originator": originator,
            "formats": csv(formats),
        }
        return await self._post_model(Channel, "/channels", params, variables_body(variables))

    async def continue_in_dialplan(
        self,
        channel_id: str,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        """Hand the channel back to the dialplan (leaves Stasis: ``StasisEnd`` follows)."""
        params = {"context": context, "extension": extension, "priority": priority, "label": label}
        await self._request("POST", f"/channels/{seg(channel_id)}/continue", params)

    async def redirect(self, channel_id: str, endpoint: str) -> None:
        """Redirect an unanswered channel (PJSIP: SIP 302 to ``endpoint``)."""
        await self._request("POST", f"/channels/{seg(channel_id)}/redirect", {"endpoint": endpoint})

    async def get_variable(self, channel_id: str, variable: str) -> str:
        body = await self._request(
            "GET", f"/channels/{seg(channel_id)}/variable", {"variable": variable}
        )
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            raise AriError("ARI GET /channels/{id}/variable: expected {'value': string}")
        value: str = body["value"]
        return value

    async def set_variable(self, channel_id: str, variable: str, value: str) -> None:
        await self._request(
            "POST",
            f"/channels/{seg(channel_id)}/variable",
            {"variable": variable, "value": value},
        )

    async def send_dtmf(
        self,
        channel_id: str,
        dtmf: str,
        *,
        before_ms: int | None = None,
        between_ms: int | None = None,
        duration_ms: int | None = None,
        after_ms: int | None = None,
    ) -> None:
        params = {
            "dtmf": dtmf,
            "before": before_ms,
            "between": between_ms,
            "duration": duration_ms,
            "after": after_ms,
        }
        await self._request("POST", f"/channels/{seg(channel_id)}/dtmf", params)

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        await self._request("POST", f"/channels/{seg(channel_id)}/moh", {"mohClass": moh_class})

    async def stop_moh(self, channel_id: str) -> None:
        await self._request("DELETE", f"/channels/{seg(channel_id)}/moh")

    async def snoop(
        self,
        channel_id: str,
        app: str | None = None,
        *,
        spy: str | None = None,
        whisper: str | None = None,
        app_args: str | Sequence[str] | None = None,
        snoop_id: str | None = None,
    ) -> Channel:
        """A snoop channel on ``channel_id``; ``spy``/``whisper``: none, in, out, both."""
        params = {
            "spy": spy,
            "whisper": whisper,
            "app": app or self._cfg.app,
            "appArgs": csv(app_args),
            "snoopId": snoop_id,
        }
        return await self._post_model(Channel, f"/channels/{seg(channel_id)}/snoop", params)
