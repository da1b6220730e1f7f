"""``medagent pbxsim``: run the Asterisk stand-in in the foreground.

An admin can point ``medagent run`` at it (same credentials and app as ``[ari]`` in the config
file), then place test calls with ``--call``. Events are logged by type and id only: caller
numbers and names are patient data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any
from urllib.parse import urlsplit

from agent.config import load_config
from agent.errors import ConfigError
from agent.log import configure_logging, get_logger
from agent.pbxsim.dialplan import Dialplan, default_dialplan
from agent.pbxsim.engine import PbxSim, PbxSimConfig
from agent.pbxsim.handsets import PhoneConfig, SimLeg

log = get_logger(__name__)

_BEHAVIOURS = ("answer", "noanswer", "busy", "unavailable")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=None, help="listen address (default: from [ari] url, else 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=None, help="ARI HTTP port (default: from [ari] url, else 8088)"
    )
    parser.add_argument("--username", default=None, help="ARI user (default: [ari] username)")
    parser.add_argument(
        "--password", default=None, help="ARI password (default: [ari] password, else 'secret')"
    )
    parser.add_argument(
        "--app", default=None, help="Stasis app of the main number (default: [ari] app)"
    )
    parser.add_argument(
        "--dialplan", metavar="FILE", help="dialplan model (.yaml/.json); default: built in"
    )
    parser.add_argument(
        "--phone",
        action="append",
        default=[],
        metavar="NAME[:BEHAVIOUR[:RING_S]]",
        help=f"a desk phone (repeatable); behaviour one of {', '.join(_BEHAVIOURS)}",
    )
    parser.add_argument(
        "--rtp-ports", default="10000-10100", metavar="MIN-MAX", help="externalMedia local ports"
    )
    parser.add_argument(
        "--sounds", action="append", default=[], metavar="DIR", help="extra sound directory"
    )
    parser.add_argument(
        "--call",
        action="append",
        default=[],
        metavar="EXTEN",
        help="place a simulated call to EXTEN once an app is connected (repeatable)",
    )
    parser.add_argument(
        "--call-seconds", type=float, default=20.0, help="how long each --call stays up"
    )


def parse_phone(text: str) -> PhoneConfig:
    """``clinician100``, ``frontdesk:busy`` or ``nurse:answer:2.5``."""
    parts = text.split(":")
    if not parts[0] or len(parts) > 3:
        raise ValueError(f"--phone expects NAME[:BEHAVIOUR[:RING_S]], got {text!r}")
    behaviour = parts[1] if len(parts) > 1 else "answer"
    if behaviour not in _BEHAVIOURS:
        raise ValueError(f"--phone {text!r}: behaviour must be one of {', '.join(_BEHAVIOURS)}")
    try:
        ring = float(parts[2]) if len(parts) > 2 else 1.0
    except ValueError:
        raise ValueError(
            f"--phone {text!r}: ring delay must be seconds, got {parts[2]!r}"
        ) from None
    return PhoneConfig(parts[0], behaviour, ring)  # type: ignore[arg-type]  # checked above


def build_config(args: argparse.Namespace) -> PbxSimConfig:
    cfg = load_config(getattr(args, "config", None))
    url = urlsplit(cfg.ari.url)
    lo, _, hi = args.rtp_ports.partition("-")
    if not (lo.isdigit() and hi.isdigit() and int(lo) <= int(hi)):
        raise ValueError(f"--rtp-ports expects MIN-MAX, got {args.rtp_ports!r}")
    dialplan: Dialplan = Dialplan.load(args.dialplan) if args.dialplan else default_dialplan()
    base = PbxSimConfig()
    return PbxSimConfig(
        username=args.username or cfg.ari.username,
        password=args.password or cfg.ari.password or "secret",
        app=args.app or cfg.ari.app,
        host=args.host or url.hostname or "127.0.0.1",
        port=args.port if args.port is not None else (url.port or 8088),
        rtp_port_min=int(lo),
        rtp_port_max=int(hi),
        dialplan=dialplan,
        phones=tuple(parse_phone(p) for p in args.phone) or base.phones,
        sound_dirs=tuple(args.sounds),
    )


def _log_event(event: dict[str, Any]) -> None:
    channel = event.get("channel") or event.get("peer") or {}
    log.info(
        "ari event",
        type=event["type"],
        channel_id=channel.get("id"),
        state=channel.get("state"),
        bridge_id=(event.get("bridge") or {}).get("id"),
        playback_id=(event.get("playback") or {}).get("id"),
        dialstatus=event.get("dialstatus"),
        cause=event.get("cause"),
    )


async def _scripted_call(sim: PbxSim, exten: str, seconds: float) -> None:
    await sim.wait_app_connected(sim.config.app)
    caller: SimLeg = await sim.place_call(
        exten=exten, caller_number="5550100", caller_name="Test Caller"
    )
    log.info("placed test call", exten=exten, channel_id=caller.channel_id)
    with contextlib.suppress(TimeoutError):
        await caller.wait_ended(seconds)
    if not caller.ended.is_set():
        await caller.hangup()
    log.info(
        "test call ended",
        channel_id=caller.channel_id,
        hangup_by=caller.hangup_by,
        path=caller.path,
    )


async def serve(config: PbxSimConfig, calls: list[str], call_seconds: float) -> None:
    sim = PbxSim(config)
    sim.event_listeners.append(_log_event)
    url = await sim.start()
    log.info("ARI stand-in listening", url=url, username=config.username, app=config.app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    for exten in calls:
        sim.spawn(_scripted_call(sim, exten, call_seconds), f"scripted-call:{exten}")
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sim.stop()


def run(args: argparse.Namespace) -> int:
    configure_logging()
    try:
        config = build_config(args)
    except (ValueError, ConfigError, OSError) as exc:
        log.error("cannot start the stand-in", error=str(exc))
        return 2
    try:
        asyncio.run(serve(config, list(args.call), args.call_seconds))
    except OSError as exc:
        log.error("cannot listen", error=str(exc))
        return 1
    return 0
