"""ARI resource snapshots as the stand-in keeps them: channels, bridges, playbacks; the objects
behind them (``SimChannel``, ``SimBridge``, ``Playback``), which ``ari.py`` and the engine's parts
create and change; ARI's error answers.

The JSON shapes follow what Asterisk 23.4.1 sent in ``shared/asterisk-reference/traces``: the field
names, the timestamp format (``2026-11-26T23:53:47.960+0000``), channel ids ``<epoch>.<counter>``,
bridge and playback ids as UUIDs. Nothing here does I/O or reads the clock; times come in as
arguments (seconds since the epoch). The objects hold the tasks and events that the engine's parts
(``bridging``, ``playback``, ``dialplan_runner``, ``originate``) run on them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # annotations only: those modules import this one
    from agent.pbxsim.dialplan import Target
    from agent.pbxsim.external_media import ExternalMediaPort
    from agent.pbxsim.handsets import SimLeg, SimPhone, Voicemail
    from agent.pbxsim.media import FrameSource

ASTERISK_ID = "02:fc:00:00:00:01"

# Q.850 causes seen in the traces, with Asterisk's cause_txt.
CAUSE_TEXT: dict[int, str] = {
    0: "Unknown",
    4: "Service unavailable",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    21: "Call Rejected",
    23: "Redirected to new destination",
    32: "Circuit/channel congestion",
    34: "Circuit/channel congestion",
}

# DELETE /channels/{id}?reason=… (channels.json) → cause code.
HANGUP_REASONS: dict[str, int] = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 19,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}


def ari_timestamp(epoch_s: float) -> str:
    """``2026-11-26T23:53:47.960+0000``: milliseconds and an offset without a colon."""
    whole = int(epoch_s)
    ms = int(round((epoch_s - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}+0000"


@dataclass
class DialplanLocation:
    context: str
    exten: str
    priority: int
    app_name: str = ""
    app_data: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "exten": self.exten,
            "priority": self.priority,
            "app_name": self.app_name,
            "app_data": self.app_data,
        }


@dataclass
class Party:
    name: str = ""
    number: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "number": self.number}


@dataclass
class ChannelSnapshot:
    """The ARI ``Channel`` model plus what the stand-in needs to know about the channel."""

    id: str
    name: str
    state: str
    created_s: float
    dialplan: DialplanLocation
    protocol_id: str = ""
    caller: Party = field(default_factory=Party)
    connected: Party = field(default_factory=Party)
    language: str = "en"
    channelvars: dict[str, str] | None = None
    """Only set in the externalMedia response (``UNICASTRTP_LOCAL_ADDRESS``/``PORT``)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": self.protocol_id,
            "caller": self.caller.to_json(),
            "connected": self.connected.to_json(),
            "accountcode": "",
            "dialplan": self.dialplan.to_json(),
            "creationtime": ari_timestamp(self.created_s),
            "language": self.language,
        }
        if self.channelvars is not None:
            out["channelvars"] = dict(self.channelvars)
        return out


@dataclass
class BridgeSnapshot:
    id: str
    bridge_type: str
    name: str
    created_s: float
    channels: list[str] = field(default_factory=list)
    technology: str = "simple_bridge"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "technology": self.technology,
            "bridge_type": self.bridge_type,
            "bridge_class": "stasis",
            "creator": "Stasis",
            "name": self.name,
            "channels": list(self.channels),
            "creationtime": ari_timestamp(self.created_s),
            "video_mode": "talker",
        }


@dataclass
class PlaybackSnapshot:
    id: str
    media_uri: str
    target_uri: str
    language: str = "en"
    state: str = "queued"
    """queued → playing → done | failed."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "media_uri": self.media_uri,
            "target_uri": self.target_uri,
            "language": self.language,
            "state": self.state,
        }


# The channel state machine: every state change the stand-in makes is a row here. Inbound SIP
# calls start in Ring, ARI-created and dialled channels in Down (README, "state values seen").
CHANNEL_STATE_TRANSITIONS: dict[str, frozenset[str]] = {
    "Down": frozenset({"Ringing", "Up"}),
    "Ring": frozenset({"Up"}),
    "Ringing": frozenset({"Up"}),
    "Up": frozenset(),
}


def next_channel_state(current: str, new: str) -> str:
    """``new`` if Asterisk makes that change (staying put is allowed); raises ``ValueError``."""
    if new == current:
        return current
    if new not in CHANNEL_STATE_TRANSITIONS.get(current, frozenset()):
        raise ValueError(f"channel state {current} -> {new} is not a change Asterisk makes")
    return new


def bridge_technology(channel_kinds: list[str], extra_participants: int) -> str:
    """What Asterisk reports as a bridge's ``technology`` for these members.

    Observed: two SIP phones → ``native_rtp``; a SIP phone and an externalMedia channel →
    ``simple_bridge``; three or more participants (a bridge playback's announcer counts) →
    ``softmix``; empty or one channel → ``simple_bridge``.
    """
    count = len(channel_kinds) + extra_participants
    if count >= 3:
        return "softmix"
    if count == 2 and extra_participants == 0 and all(k != "external" for k in channel_kinds):
        return "native_rtp"
    return "simple_bridge"


class RestError(Exception):
    """An ARI error response: the status and the exact JSON body Asterisk sends."""

    def __init__(self, status: int, message: str, *, key: str = "message") -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.body = {key: message}


NOT_IN_STASIS = "Channel not in Stasis application"


class SimBridge:
    def __init__(self, snap: BridgeSnapshot, app: str) -> None:
        self.snap = snap
        self.app = app
        self.members: list[SimChannel] = []
        self.announcers: list[Playback] = []
        self.inbox: dict[str, deque[bytes]] = {}
        self.mix_out: dict[str, FrameSource] = {}
        self.mixer_task: asyncio.Task[None] | None = None

    def technology(self) -> str:
        return bridge_technology([m.kind for m in self.members], len(self.announcers))

    def json(self) -> dict[str, Any]:
        self.snap.channels = [m.snap.id for m in self.members]
        self.snap.technology = self.technology()
        return self.snap.to_json()


class SimChannel:
    """Asterisk's side of one channel: its snapshot, where it is (Stasis, a bridge, a Dial) and
    what is playing to it. The far end is ``leg`` (SIP) or ``port`` (externalMedia)."""

    def __init__(
        self,
        snap: ChannelSnapshot,
        kind: Literal["caller", "phone", "external"],
    ) -> None:
        self.snap = snap
        self.kind = kind
        self.app: str | None = None
        """The Stasis app subscribed to this channel's events."""
        self.in_stasis = False
        self.stasis_exit: asyncio.Future[Target | None] | None = None
        self.bridge: SimBridge | None = None
        self.vars: dict[str, str] = {}
        self.hungup = False
        self.leg: SimLeg | None = None
        self.port: ExternalMediaPort | None = None
        self.phone: SimPhone | None = None
        self.direct_peer: SimChannel | None = None
        """The other leg of a dialplan ``Dial`` (frames pass straight through)."""
        self.prompt: Playback | None = None
        """A channel playback in progress: the channel hears it, and its own audio is held back."""
        self.moh_task: asyncio.Task[None] | None = None
        self.playback_queue: deque[Playback] = deque()
        self.player_task: asyncio.Task[None] | None = None
        self.held_back = False
        """Frames were held back (playback); the next forwarded one resumes with the marker."""
        self.ringing_dial: str | None = None
        """Dial string while an originate rings (a hangup then reports ``Dial(NOANSWER)``)."""
        self.recording: Voicemail | None = None
        self.dial_task: asyncio.Task[None] | None = None

    def note(self, text: str) -> None:
        """Add an outcome (``BUSY``, ``redirect(…)``) to the caller's ``path``, if it has a leg."""
        if self.leg is not None:
            self.leg.path.append(text)


class Playback:
    """One ARI playback: on a channel it is queued and played by the channel's player; on a
    bridge its frames are mixed in as an announcer."""

    def __init__(self, snap: PlaybackSnapshot, app: str, target: SimChannel | SimBridge) -> None:
        self.snap = snap
        self.app = app
        self.target = target
        self.frames: deque[bytes] = deque()
        self.items: list[str] = []
        self.stopped = asyncio.Event()
        self.source: FrameSource | None = None
