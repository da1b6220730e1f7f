"""Where callers go when the agent cannot keep them: the dialplan fallback, and the recovery of
calls a previous agent process left in Stasis.

Light on purpose (the ARI client and the settings, nothing of the models): ``medagent run``
recovers stranded callers from here before it loads anything heavy, so a caller whose agent was
killed reaches the front desk within a second or two of the restart, not after the models load.
"""

from __future__ import annotations

import contextlib
from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.adapters.ari.client import AriClient
from agent.config import TransferConfig
from agent.errors import AriError
from agent.log import get_logger

log = get_logger(__name__)

OUR_CHANNEL_PREFIX = "medagent-"
"""Channels and bridges this agent creates (externalMedia, transfer legs, a call's bridge) have ids
with this prefix, so the supervisor never mistakes their StasisStart for a new call, and a later
process knows what an earlier one left behind."""

ORPHAN_MARGIN = timedelta(seconds=1)
"""Channels created this close to our (re)connect may still have their StasisStart in flight."""


async def hand_to_fallback(ari: AriClient, channel_id: str, t: TransferConfig, reason: str) -> None:
    """Continue a caller in the dialplan fallback (front desk, then voicemail), saying why in
    ``MEDAGENT_REASON``. The reason is best effort; the continue is not."""
    with contextlib.suppress(AriError):
        await ari.set_variable(channel_id, "MEDAGENT_REASON", reason)
    await ari.continue_in_dialplan(
        channel_id, t.fallback_context, t.fallback_extension, t.fallback_priority
    )


@dataclass
class Recovered:
    callers: int = 0
    """Callers handed to the fallback."""
    channels: int = 0
    """Our own media and transfer channels hung up."""
    bridges: int = 0
    """Our own bridges destroyed."""


async def recover_stranded(
    ari: AriClient,
    app: str,
    transfer: TransferConfig,
    *,
    before: datetime,
    owned: Set[str] = frozenset(),
) -> Recovered:
    """Calls left in ``app``'s Stasis by a previous process (killed, crashed, restarted) sit in
    dead air: Asterisk keeps them in Stasis when the websocket goes away. Hand every such caller
    to the dialplan fallback, hang up the media and transfer channels nobody owns, and destroy the
    bridges nobody owns. ``before``: channels created after it (less ``ORPHAN_MARGIN``) are new
    calls whose StasisStart is on its way, not stranded ones. ``owned``: ids of live calls."""
    done = Recovered()
    try:
        stasis = await ari.get_application(app)
    except AriError as exc:
        log.error("could not look for calls left in Stasis", error=type(exc).__name__)
        return done
    orphans = []
    for cid in stasis.channel_ids:
        if cid in owned:
            continue
        try:
            channel = await ari.get_channel(cid)
        except AriError:
            continue  # gone meanwhile
        if channel.creationtime is not None and channel.creationtime >= before - ORPHAN_MARGIN:
            continue
        orphans.append(cid)
    if orphans:
        log.warning(
            "calls left in Stasis by a previous run: handing them to the fallback",
            count=len(orphans),
        )
    # Callers first: they are the ones in dead air.
    for cid in sorted(orphans, key=lambda c: c.startswith(OUR_CHANNEL_PREFIX)):
        try:
            if cid.startswith(OUR_CHANNEL_PREFIX):
                await ari.hangup(cid)
                done.channels += 1
            else:
                await hand_to_fallback(ari, cid, transfer, "agent-restart")
                done.callers += 1
        except AriError as exc:
            log.error("could not recover a stranded call", channel=cid, error=type(exc).__name__)
    try:
        bridges = await ari.list_bridges()
    except AriError as exc:
        log.error("could not look for bridges left behind", error=type(exc).__name__)
        return done
    for bridge in bridges:
        if not bridge.id.startswith(OUR_CHANNEL_PREFIX) or bridge.id in owned:
            continue
        if bridge.creationtime is not None and bridge.creationtime >= before - ORPHAN_MARGIN:
            continue
        with contextlib.suppress(AriError):
            await ari.destroy_bridge(bridge.id)
            done.bridges += 1
    if done.bridges:
        log.info("bridges left by a previous run destroyed", count=done.bridges)
    return done
