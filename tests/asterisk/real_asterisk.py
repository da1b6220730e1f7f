"""The real Asterisk for the ``asterisk`` test tier: configuration, process, ARI/AMI access, callers.

- :func:`generate_config` builds a running configuration from the project's own ``asterisk-conf/``
  and ``dialplans/`` (placeholders filled with test values, every port on 127.0.0.1 and picked free
  so that runs can go in parallel) plus test-only parts: a SIP transport, the ``frontdesk`` and
  ``clinician100`` desk phones (sipp UAS on their own ports) and a voicemail box.
- :class:`RealAsterisk` starts, stops and restarts it through ``../shared/asterisk/asterisk-run``
  with its own ``ASTRUN`` folder, and runs CLI commands.
- :class:`AriEvents` is one ARI websocket (an app) whose events a test can wait for.
- :class:`RealCaller` is a caller whose audio the test controls entirely: an ARI originate of
  ``Local/<number>@<context>/n`` into a test-only Stasis app, bridged with an externalMedia channel
  that sends and receives μ-law RTP on a local UDP socket.
- :class:`TcpCutter` sits between a client and Asterisk's HTTP port so a test can drop the ARI
  websocket the way a network fault does (no close frame).
- :class:`SipPhone` is a sipp desk phone (answers, or rings without answering).
- :func:`running_agent` runs our own Supervisor + AriClient (fake engines: scripted recognition,
  keyword understanding, real espeak prompts) on this Asterisk; :func:`agent_config` points a
  Config at it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from agent.adapters.ari.client import AriClient
from agent.adapters.asterisk_conf import fill_in, parse, set_dialplan_variables
from agent.config import AriConfig, Config, MediaConfig, PracticeConfig, TransferConfig
from agent.core.frames import ULAW_FRAME_BYTES
from agent.core.g711 import ULAW_SILENCE
from agent.core.rtp import PT_PCMU, RtpPacket
from agent.engines.tts import EspeakTts
from agent.runtime.supervisor import Supervisor
from tests.fakes.engines import ScriptedStt, fake_engines
from tests.integration.callkit import Observer

ROOT = Path(__file__).resolve().parents[2]
ASTERISK_CONF = ROOT / "asterisk-conf"
DIALPLANS = ROOT / "dialplans"
SIPP_DIR = Path(__file__).resolve().parent / "sipp"
DEFAULT_BIN = "/opt/asterisk-ref/sbin/asterisk"
DEFAULT_RUN = ROOT.parent / "shared" / "asterisk" / "asterisk-run"

ARI_APP = "medical-agent"
ARI_USER = "medagent"
"""20 ms of 8 kHz μ-law: what Asterisk sends per RTP packet and what we send back."""


def asterisk_binary() -> Path:
    return Path(os.environ.get("MEDAGENT_ASTERISK_BIN", DEFAULT_BIN))


def modules_dir() -> Path:
    return asterisk_binary().parent.parent / "lib" / "asterisk" / "modules"


def missing_modules() -> list[str]:
    """Modules our asterisk-conf/modules.conf loads that this Asterisk build does not have."""
    wanted = parse((ASTERISK_CONF / "modules.conf").read_text()).section("modules").values("load")
    return [m for m in wanted if not (modules_dir() / m).exists()]


def asterisk_run_script() -> Path:
    value = os.environ.get("MEDAGENT_ASTERISK_RUN")
    if value is None:
        return DEFAULT_RUN
    path = Path(value)
    return path if path.is_absolute() else (ROOT / path)


def unavailable_reason() -> str | None:
    """Why the real Asterisk cannot run here, or ``None`` when it can."""
    binary, run = asterisk_binary(), asterisk_run_script()
    if not os.access(binary, os.X_OK):
        return (
            f"real Asterisk not installed ({binary} missing; run ../shared/asterisk/install.sh "
            "or set MEDAGENT_ASTERISK_BIN)"
        )
    if not os.access(run, os.X_OK):
        return f"asterisk-run script not found at {run} (set MEDAGENT_ASTERISK_RUN)"
    if shutil.which("sipp") is None:
        return "sipp not installed (apt-get install sip-tester)"
    if not (modules_dir() / "app_voicemail.so").exists():
        # The fallback ends in the practice's mailbox: without the module that step cannot run.
        return f"this Asterisk build has no app_voicemail.so in {modules_dir()} (update ../shared)"
    return None


# --------------------------------------------------------------------------------------------------
# Configuration


def udp_port_bound(port: int) -> bool:
    """Whether a process has bound UDP ``port`` (Linux: read from /proc, no probe packet)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in lines):
            return True
    return False


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free right now on 127.0.0.1 for TCP or UDP (racy by nature; good enough for tests)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Ports:
    http: int
    ami: int
    sip: int
    rtp_start: int
    rtp_end: int
    frontdesk: int
    """SIP port of the sipp UAS playing the front desk phone."""
    clinician: int
    """SIP port of the sipp UAS playing clinician100's desk phone."""

    @classmethod
    def pick(cls) -> Ports:
        # RTP: a random 200-port window, so that two runs rarely share one; Asterisk skips ports
        # in use inside its range anyway.
        rtp_start = random.randrange(20000, 29000, 2)
        return cls(
            http=free_port(),
            ami=free_port(),
            sip=free_port(socket.SOCK_DGRAM),
            rtp_start=rtp_start,
            rtp_end=rtp_start + 200,
            frontdesk=free_port(socket.SOCK_DGRAM),
            clinician=free_port(socket.SOCK_DGRAM),
        )


@dataclass(frozen=True)
class BoxSettings:
    """Dialplan settings (medagent-settings.conf) shortened so the tier stays fast."""

    answer_timeout_s: int = 2
    frontdesk_ring_s: int = 3
    oncall_ring_s: int = 3
    mode: str = "24x7"
    office_open: bool | None = None
    """``None``: the practice's hours as written; ``True``/``False``: always open/closed."""


# Modules that only add start-up time or log noise in a test box (same reasoning as the
# reference configuration in ../shared/asterisk/example-conf/modules.conf).
_TEST_NOLOAD = [
    "chan_iax2.so",
    "cdr_csv.so",
    "res_config_pgsql.so",
    "res_stun_monitor.so",
    "res_pjsip_config_wizard.so",
    "chan_websocket.so",
    "res_aeap.so",
    "res_speech_aeap.so",
    "cdr_custom.so",
    "cdr_manager.so",
    "cdr_sqlite3_custom.so",
    "cel_custom.so",
    "cel_manager.so",
    "cel_sqlite3_custom.so",
    "res_pjsip_outbound_registration.so",
    "res_pjsip_publish_asterisk.so",
    "pbx_dundi.so",
    "pbx_ael.so",
    "pbx_lua.so",
    "res_config_sqlite3.so",
    "res_smdi.so",
    "res_clialiases.so",
    "res_pjsip_notify.so",
]


def settings_conf(settings: BoxSettings) -> str:
    """Our dialplans/medagent-settings.conf with the test box's values."""
    text = (DIALPLANS / "medagent-settings.conf").read_text()
    if settings.office_open is not None:
        # Replace the practice's hours by "always open" or "always closed" so that a test of
        # after_hours_only does not depend on the time of day it runs at.
        hours = re.compile(r"^ same => n,GotoIfTime\(.*\)$\n", re.M)
        if not hours.search(text):
            raise ValueError("medagent-settings.conf no longer has GotoIfTime office hours")
        text = hours.sub("", text)
        if settings.office_open:
            text = text.replace(
                "exten => s,1,NoOp(office hours check)\n",
                "exten => s,1,NoOp(office hours check)\n same => n,GotoIfTime(*,*,*,*?open)\n",
            )
    return set_dialplan_variables(
        text,
        {
            "MEDAGENT_APP": ARI_APP,
            "MEDAGENT_ANSWER_TIMEOUT_S": str(settings.answer_timeout_s),
            "MEDAGENT_FRONTDESK": "PJSIP/frontdesk",
            "MEDAGENT_FRONTDESK_RING_S": str(settings.frontdesk_ring_s),
            "MEDAGENT_VOICEMAIL": "100@default",
            "MEDAGENT_MODE": settings.mode,
            "MEDAGENT_ONCALL_RING_S": str(settings.oncall_ring_s),
        },
    )


def generate_config(
    conf_dir: Path,
    ports: Ports,
    *,
    ari_password: str,
    ami_secret: str,
    settings: BoxSettings = BoxSettings(),
) -> None:
    """Write a complete Asterisk configuration into ``conf_dir`` from the project's files."""
    conf_dir.mkdir(parents=True, exist_ok=True)

    def ours(name: str) -> str:
        return (ASTERISK_CONF / name).read_text()

    def write(name: str, text: str) -> None:
        (conf_dir / name).write_text(text)

    write("ari.conf", fill_in(ours("ari.conf"), {(ARI_USER, "password"): ari_password}))
    write("http.conf", fill_in(ours("http.conf"), {("general", "bindport"): str(ports.http)}))
    write(
        "manager.conf",
        fill_in(
            ours("manager.conf"),
            {("general", "port"): str(ports.ami), (ARI_USER, "secret"): ami_secret},
        ),
    )
    write(
        "rtp.conf",
        fill_in(
            ours("rtp.conf"),
            {
                ("general", "rtpstart"): str(ports.rtp_start),
                ("general", "rtpend"): str(ports.rtp_end),
            },
        ),
    )
    modules = fill_in(ours("modules.conf"), {("modules", "autoload"): "yes"})
    # A load line for a module this build lacks is an error at boot; see missing_modules().
    for name in missing_modules():
        modules = modules.replace(f"load => {name}\n", f"; not in this build: {name}\n")
    write("modules.conf", modules + "".join(f"noload => {m}\n" for m in _TEST_NOLOAD))

    # Our templates verbatim (what an admin's phones inherit), our example phones replaced by
    # test phones with static contacts on the sipp ports: a test cannot register a real phone.
    pjsip = parse(ours("pjsip.conf"), source="asterisk-conf/pjsip.conf")
    lines = [
        "[test-transport]",
        "type = transport",
        "protocol = udp",
        f"bind = 127.0.0.1:{ports.sip}",
        "",
    ]
    for section in pjsip.sections:
        if not section.template:
            continue
        lines.append(f"[{section.name}](!)")
        lines += [f"{o.key} = {o.value}" for o in section.options]
        lines.append("")
    for name, port in (("frontdesk", ports.frontdesk), ("clinician100", ports.clinician)):
        lines += [
            f"[{name}](medagent-phone)",
            "transport = test-transport",
            f"aors = {name}",
            "",
            f"[{name}](medagent-phone-aor)",
            f"contact = sip:{name}@127.0.0.1:{port}",
            # sipp's scenarios expect an INVITE first; an OPTIONS ping would derail them.
            "qualify_frequency = 0",
            "",
        ]
    # The trunk a sipp caller comes in on (identified by its From user): what a carrier's
    # endpoint does in the admin's pjsip.conf, sending calls to our inbound context.
    lines += [
        "[trunk]",
        "type = endpoint",
        "transport = test-transport",
        "context = medagent-inbound",
        "disallow = all",
        "allow = ulaw",
        "direct_media = no",
        "rtp_symmetric = yes",
        "",
    ]
    # clinician101 exists but has no contact: UNAVAILABLE, as an unplugged phone.
    lines += [
        "[clinician101](medagent-phone)",
        "transport = test-transport",
        "aors = clinician101",
        "",
        "[clinician101](medagent-phone-aor)",
        "",
    ]
    write("pjsip.conf", "\n".join(lines))

    write("medagent-settings.conf", settings_conf(settings))
    shutil.copy(DIALPLANS / "medagent.conf", conf_dir / "medagent.conf")
    write(
        "extensions.conf",
        "\n".join(
            [
                "; generated by tests/asterisk/real_asterisk.py: the admin's extensions.conf",
                "[general]",
                "static = yes",
                "writeprotect = yes",
                "",
                "#include medagent-settings.conf",
                "#include medagent.conf",
                "",
                "; the desk phones' own context (from the medagent-phone template)",
                "[from-internal]",
                "exten => _X.,1,Hangup()",
                "",
            ]
        ),
    )
    write(
        "voicemail.conf",
        "[general]\nformat = wav\nattach = no\n\n[default]\n"
        "100 => 4826,Practice voicemail\n101 => 4827,On-call voicemail\n",
    )
    write(
        "logger.conf",
        "[general]\ndateformat = %F %T.%3q\n\n[logfiles]\n"
        "full => notice,warning,error,verbose(3)\nmessages.log => notice,warning,error\n",
    )
    write("musiconhold.conf", "[default]\nmode = files\ndirectory = /usr/share/asterisk/moh\n")
    write(
        "indications.conf",
        "[general]\ncountry = us\n\n[us]\ndescription = United States\n"
        "ringcadence = 2000,4000\nbusy = 480+620/500,0/500\nring = 440+480/2000,0/4000\n"
        "congestion = 480+620/250,0/250\n",
    )
    for quiet in (
        "features.conf",
        "acl.conf",
        "udptl.conf",
        "ccss.conf",
        "pjproject.conf",
        "websocket_client.conf",
    ):
        # Present but empty: their absence only fills the log with "Unable to load config".
        write(quiet, "; intentionally empty (test box)\n")
    write("cdr.conf", "[general]\nenable = no\n")
    write("cel.conf", "[general]\nenable = no\n")


# --------------------------------------------------------------------------------------------------
# The process


@dataclass
class RealAsterisk:
    """One running Asterisk with a generated configuration (see :func:`generate_config`)."""

    workdir: Path
    ports: Ports = field(default_factory=Ports.pick)
    settings: BoxSettings = field(default_factory=BoxSettings)
    ari_password: str = field(default_factory=lambda: uuid.uuid4().hex)
    ami_secret: str = field(default_factory=lambda: uuid.uuid4().hex)
    boot_s: float = 0.0
    """How long the last start took."""

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "conf"

    @property
    def astrun(self) -> Path:
        return self.workdir / "run"

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}/ari"

    @property
    def ari_auth(self) -> tuple[str, str]:
        return (ARI_USER, self.ari_password)

    @property
    def full_log(self) -> Path:
        return self.astrun / "log" / "full"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["AST_CONF_DIR"] = str(self.conf_dir)
        env["ASTRUN"] = str(self.astrun)
        env["AST_PREFIX"] = str(asterisk_binary().parent.parent)
        env["AST_SOUNDS"] = str(self._sounds())
        return env

    def _sounds(self) -> Path:
        """Debian's sound package installs ``sounds/en_US_f_Allison`` but, without its postinst
        alternatives, no ``sounds/en``, so every prompt would be "does not exist in any format".
        Give this box a sounds folder where ``en`` points at the installed voice."""
        system = Path("/usr/share/asterisk/sounds")
        if (system / "en").exists() or not (system / "en_US_f_Allison").is_dir():
            return system
        sounds = self.workdir / "sounds"
        sounds.mkdir(parents=True, exist_ok=True)
        for entry in system.iterdir():
            link = sounds / entry.name
            if not link.exists():
                link.symlink_to(entry)
        if not (sounds / "en").exists():
            (sounds / "en").symlink_to(system / "en_US_f_Allison")
        return sounds

    def _run(self, *args: str, timeout: float = 40.0) -> str:
        proc = subprocess.run(
            [str(asterisk_run_script()), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"asterisk-run {' '.join(args)} failed ({proc.returncode}): "
                f"{proc.stdout}{proc.stderr}"
            )
        return proc.stdout

    def start(self) -> None:
        generate_config(
            self.conf_dir,
            self.ports,
            ari_password=self.ari_password,
            ami_secret=self.ami_secret,
            settings=self.settings,
        )
        begin = time.monotonic()
        self._run("start")
        self.wait_ari()
        self.boot_s = time.monotonic() - begin

    def stop(self) -> None:
        self._run("stop")

    def restart(self) -> None:
        """Stop (``core stop now``: callers get BYE, websockets die) and start again."""
        self.stop()
        self.start()

    def use_settings(self, settings: BoxSettings) -> None:
        """Rewrite medagent-settings.conf with ``settings`` and ``dialplan reload`` (no restart)."""
        self.settings = settings
        (self.astrun / "etc" / "medagent-settings.conf").write_text(settings_conf(settings))
        self.cli("dialplan reload")

    def cli(self, command: str) -> str:
        """One CLI command against the running instance (``asterisk -rx``)."""
        return self._run("cli", command, timeout=15.0)

    def wait_ari(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                r = httpx.get(f"{self.ari_url}/asterisk/ping", auth=self.ari_auth, timeout=1.0)
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"ARI did not answer on {self.ari_url}; see {self.full_log}")
            time.sleep(0.05)

    def log_lines(self, *levels: str) -> list[str]:
        """Lines of ``$ASTRUN/log/full`` at the given levels (``WARNING``, ``ERROR``)."""
        if not self.full_log.exists():
            return []
        tags = tuple(f"{lvl}[" for lvl in levels)
        return [
            line for line in self.full_log.read_text().splitlines() if any(t in line for t in tags)
        ]


# --------------------------------------------------------------------------------------------------
# ARI events


class AriEvents:
    """One ARI websocket for ``app``; keeps every event so a test can wait for one.

    ``subscribe_all=True`` also delivers events of channels that are not in the app (dialplan
    progress, ``ChannelVarset``), which is how a test watches a call the agent never sees."""

    def __init__(self, ws: Any, app: str) -> None:
        self.app = app
        self.events: list[dict[str, Any]] = []
        self._ws = ws
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name=f"ari-events-{app}")
        self.closed = False

    @classmethod
    async def connect(
        cls,
        asterisk: RealAsterisk,
        app: str,
        *,
        subscribe_all: bool = False,
        port: int | None = None,
    ) -> AriEvents:
        user, password = asterisk.ari_auth
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        url = (
            f"ws://127.0.0.1:{port or asterisk.ports.http}/ari/events?app={app}"
            f"&subscribeAll={'true' if subscribe_all else 'false'}"
        )
        ws = await websockets.connect(url, additional_headers={"Authorization": f"Basic {token}"})
        return cls(ws, app)

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                self.events.append(json.loads(message))
                self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True
            self._changed.set()

    async def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout_s: float = 10.0,
        *,
        start: int = 0,
    ) -> dict[str, Any]:
        """The first event from index ``start`` on that satisfies ``predicate``."""
        index = start
        async with asyncio.timeout(timeout_s):
            while True:
                while index < len(self.events):
                    event = self.events[index]
                    index += 1
                    if predicate(event):
                        return event
                if self.closed:
                    raise ConnectionError(f"ARI websocket for {self.app} closed while waiting")
                self._changed.clear()
                await self._changed.wait()

    async def wait_closed(self, timeout_s: float = 5.0) -> None:
        """Wait until Asterisk (or the network) ends this websocket."""
        await asyncio.wait_for(asyncio.shield(self._reader), timeout_s)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == type_]

    async def close(self) -> None:
        await self._ws.close()
        await self._reader


def channel_event(type_: str, channel_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("type") == type_ and e.get("channel", {}).get("id") == channel_id


# --------------------------------------------------------------------------------------------------
# A caller controlled by the test


class _RtpSocket(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            self.packets.append(RtpPacket.parse(data))
        except ValueError:
            return
        self.arrived.set()


class MediaLeg:
    """An externalMedia channel (μ-law RTP on a local UDP socket) in a mixing bridge with
    ``channel_id``: the test's ears and mouth on that channel. Used for the caller's side by
    :class:`RealCaller` and for a test playing the agent."""

    def __init__(
        self, http: httpx.AsyncClient, transport: asyncio.DatagramTransport, rtp: _RtpSocket
    ) -> None:
        self._http = http
        self._transport = transport
        self._rtp = rtp
        self.media_id = ""
        self.bridge_id = ""
        self.remote: tuple[str, int] = ("", 0)
        self._seq = random.randrange(1 << 16)
        self._ts = random.randrange(1 << 32)
        self.ssrc = random.randrange(1 << 32)

    @classmethod
    async def attach(cls, http: httpx.AsyncClient, events: AriEvents, channel_id: str) -> MediaLeg:
        loop = asyncio.get_running_loop()
        transport, rtp = await loop.create_datagram_endpoint(
            _RtpSocket, local_addr=("127.0.0.1", 0)
        )
        leg = cls(http, transport, rtp)
        try:
            await leg._connect(events, channel_id)
        except BaseException:
            await leg.close()
            raise
        return leg

    async def _connect(self, events: AriEvents, channel_id: str) -> None:
        port = self._transport.get_extra_info("sockname")[1]
        media_id = f"{channel_id}-media"
        mark = len(events.events)
        r = await self._http.post(
            "/channels/externalMedia",
            params={
                "app": events.app,
                "external_host": f"127.0.0.1:{port}",
                "format": "ulaw",
                "channelId": media_id,
            },
        )
        r.raise_for_status()
        self.media_id = media_id
        variables = r.json()["channelvars"]
        self.remote = (
            variables["UNICASTRTP_LOCAL_ADDRESS"],
            int(variables["UNICASTRTP_LOCAL_PORT"]),
        )
        # The REST answer comes before the externalMedia StasisStart; addChannel before it is 422.
        await events.wait_for(channel_event("StasisStart", media_id), 5.0, start=mark)
        r = await self._http.post("/bridges", params={"type": "mixing"})
        r.raise_for_status()
        self.bridge_id = r.json()["id"]
        r = await self._http.post(
            f"/bridges/{self.bridge_id}/addChannel", params={"channel": f"{channel_id},{media_id}"}
        )
        r.raise_for_status()

    async def send(self, ulaw: bytes, *, realtime: bool = True) -> None:
        """Play μ-law bytes into the call, 160 bytes per RTP packet, paced at 20 ms."""
        start = time.monotonic()
        for i, offset in enumerate(range(0, len(ulaw), ULAW_FRAME_BYTES)):
            frame = ulaw[offset : offset + ULAW_FRAME_BYTES].ljust(
                ULAW_FRAME_BYTES, bytes([ULAW_SILENCE])
            )
            packet = RtpPacket(PT_PCMU, self._seq, self._ts, self.ssrc, frame)
            self._transport.sendto(packet.serialize(), self.remote)
            self._seq = (self._seq + 1) & 0xFFFF
            self._ts = (self._ts + ULAW_FRAME_BYTES) & 0xFFFFFFFF
            if realtime:
                delay = start + (i + 1) * 0.02 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    def heard_packets(self) -> list[RtpPacket]:
        return list(self._rtp.packets)

    def heard(self) -> bytes:
        """Every μ-law byte received so far, in arrival order."""
        return b"".join(p.payload for p in self._rtp.packets)

    async def wait_heard(self, n_bytes: int, timeout_s: float = 5.0) -> bytes:
        """Wait until at least ``n_bytes`` of audio have arrived; returns all of it."""
        async with asyncio.timeout(timeout_s):
            while len(self.heard()) < n_bytes:
                self._rtp.arrived.clear()
                await self._rtp.arrived.wait()
        return self.heard()

    async def close(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            if self.media_id:
                await self._http.delete(f"/channels/{self.media_id}")
            if self.bridge_id:
                await self._http.delete(f"/bridges/{self.bridge_id}")
        self._transport.close()


class RealCaller:
    """A call into the real Asterisk whose audio the test sends and records.

    ``await RealCaller.dial(asterisk, "5551230000")`` originates
    ``Local/5551230000@medagent-inbound/n`` into a private Stasis app; the ``;2`` half runs our
    dialplan exactly as a trunk call would. ``await caller.answered()`` waits until someone (the
    agent, the front desk, voicemail) answers, then bridges the caller leg with an externalMedia
    channel on a local UDP socket. Then ``await caller.send(ulaw)`` plays μ-law into the call as
    paced 20 ms RTP, ``caller.heard()`` is every byte the caller has received,
    ``await caller.hangup()`` hangs up and ``await caller.wait_hangup()`` waits for the far side to.
    """

    def __init__(
        self, asterisk: RealAsterisk, http: httpx.AsyncClient, events: AriEvents, channel_id: str
    ) -> None:
        self.asterisk = asterisk
        self.channel_id = channel_id
        self.events = events
        self.http = http
        self.media: MediaLeg | None = None

    @classmethod
    async def dial(
        cls,
        asterisk: RealAsterisk,
        number: str,
        *,
        context: str = "medagent-inbound",
        caller_id: str = '"Test Caller" <5550001234>',
        timeout_s: int = 30,
    ) -> RealCaller:
        app = f"test-caller-{uuid.uuid4().hex[:8]}"
        channel_id = f"caller-{uuid.uuid4().hex[:12]}"
        events = await AriEvents.connect(asterisk, app)
        http = httpx.AsyncClient(base_url=asterisk.ari_url, auth=asterisk.ari_auth, timeout=5.0)
        caller = cls(asterisk, http, events, channel_id)
        r = await http.post(
            "/channels",
            params={
                "endpoint": f"Local/{number}@{context}/n",
                "app": app,
                "callerId": caller_id,
                "timeout": str(timeout_s),
                "channelId": channel_id,
                "otherChannelId": channel_id + "-2",
                # Without it the Local channel is created with every format, negotiates slin192
                # and resamples: the audio then reaches the far end close but not bit-exact.
                "formats": "ulaw",
            },
        )
        if r.status_code != 200:
            await caller.close()
            raise RuntimeError(f"originate failed: {r.status_code} {r.text}")
        return caller

    async def answered(self, timeout_s: float = 10.0) -> None:
        """Wait for the answer (the caller leg's StasisStart), then connect the caller's audio."""
        await self.events.wait_for(channel_event("StasisStart", self.channel_id), timeout_s)
        self.media = await MediaLeg.attach(self.http, self.events, self.channel_id)

    def _media(self) -> MediaLeg:
        if self.media is None:
            raise RuntimeError("the call is not answered yet: await answered() first")
        return self.media

    async def send(self, ulaw: bytes, *, realtime: bool = True) -> None:
        await self._media().send(ulaw, realtime=realtime)

    def heard(self) -> bytes:
        return self.media.heard() if self.media is not None else b""

    def heard_packets(self) -> list[RtpPacket]:
        return self.media.heard_packets() if self.media is not None else []

    async def wait_heard(self, n_bytes: int, timeout_s: float = 5.0) -> bytes:
        return await self._media().wait_heard(n_bytes, timeout_s)

    async def hangup(self) -> None:
        r = await self.http.delete(f"/channels/{self.channel_id}")
        if r.status_code not in (204, 404):
            r.raise_for_status()

    async def wait_hangup(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Wait until the far side ends the call (the caller leg leaves Stasis)."""
        return await self.events.wait_for(
            lambda e: (
                e.get("type") in ("StasisEnd", "ChannelDestroyed")
                and e.get("channel", {}).get("id") == self.channel_id
            ),
            timeout_s,
        )

    async def close(self) -> None:
        """Hang up whatever is left and release the socket, the websocket and the HTTP client."""
        with contextlib.suppress(httpx.HTTPError):
            await self.http.delete(f"/channels/{self.channel_id}")
        if self.media is not None:
            await self.media.close()
        await self.http.aclose()
        await self.events.close()


# --------------------------------------------------------------------------------------------------
# Network faults and desk phones


class TcpCutter:
    """A TCP relay on 127.0.0.1 in front of Asterisk's HTTP port. ``drop()`` closes every relayed
    connection at once (an ARI websocket lost without a close frame, like a cable pulled), while
    new connections are still accepted, so a client's reconnect succeeds."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._links |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst), name="tcp-cutter-pump")
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._links.discard(dst)
            dst.close()

    def drop(self) -> int:
        """Abort every relayed connection (RST, no close frame); returns how many."""
        n = len(self._links)
        for w in list(self._links):
            w.transport.abort()
        self._links.clear()
        return n

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.drop()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)


def stop_sipp(proc: subprocess.Popen[bytes] | None) -> None:
    """End a sipp process (politely, then not) and close its stderr pipe."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc is not None and proc.stderr is not None:
        proc.stderr.close()


@dataclass
class SipPhone:
    """A sipp UAS playing a desk phone: ``scenario`` ``answer`` or ``noanswer``."""

    user: str
    port: int
    scenario: str = "answer"
    log_dir: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            "sipp",
            "-sf",
            str(SIPP_DIR / f"uas_{self.scenario}.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-s",
            self.user,
            "-m",
            "1",
            "-nostdin",
            "-mi",
            "127.0.0.1",
            "-mp",
            str(free_port(socket.SOCK_DGRAM)),
            "-rtp_echo",
            # A whole test (agent start-up, a spoken turn, Whisper) runs while the phone waits:
            # under a loaded make check that has taken more than 30 s.
            "-timeout",
            "90s",
        ]
        cwd = self.log_dir if self.log_dir is not None else None
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        # Asterisk finds the phone "unavailable" if it rings before sipp has its port.
        deadline = time.monotonic() + 15
        while not udp_port_bound(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sipp desk phone {self.user} did not start on {self.port}")
            time.sleep(0.02)

    async def wait(self, timeout_s: float = 20.0) -> int:
        """sipp's exit status: 0 when the scenario ran to its end (the call happened as scripted)."""
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, timeout_s)

    def stop(self) -> None:
        stop_sipp(self.proc)


@contextlib.contextmanager
def write_rtp_pcap(path: Path, ulaw: bytes, *, ptime_ms: int, ssrc: int = 0x5EED) -> None:
    """``ulaw`` as one RTP stream of ``ptime_ms`` packets in a pcap, for sipp's
    ``play_pcap_audio`` (which takes the pacing from the capture's timestamps and rewrites the
    addresses and ports)."""
    per_packet = 8 * ptime_ms
    ulaw += bytes([0xFF]) * (-len(ulaw) % per_packet)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet
    for i in range(len(ulaw) // per_packet):
        payload = ulaw[i * per_packet : (i + 1) * per_packet]
        rtp = struct.pack("!BBHII", 0x80, 0, i & 0xFFFF, i * per_packet, ssrc) + payload
        udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
            bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]),
        )  # fmt: skip
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        at_us = i * ptime_ms * 1000
        out.append(
            struct.pack("<IIII", at_us // 1_000_000, at_us % 1_000_000, len(frame), len(frame))
        )
        out.append(frame)
    path.write_bytes(b"".join(out))


@dataclass
class SipCaller:
    """A sipp UAC calling ``number`` through the test box's trunk, playing ``pcap`` (RTP of
    ``ptime_ms`` packets), then staying on the line ``hold_ms`` before its BYE."""

    asterisk: RealAsterisk
    number: str
    pcap: Path
    ptime_ms: int
    hold_ms: int = 10_000
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            "sipp",
            "-sf",
            str(SIPP_DIR / "uac_call.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port(socket.SOCK_DGRAM)),
            "-s",
            self.number,
            "-m",
            "1",
            "-nostdin",
            "-mi",
            "127.0.0.1",
            "-mp",
            str(free_port(socket.SOCK_DGRAM)),
            "-key",
            "pcapfile",
            str(self.pcap),
            "-key",
            "ptime",
            str(self.ptime_ms),
            "-d",
            str(self.hold_ms),
            "-timeout",
            "90s",
            f"127.0.0.1:{self.asterisk.ports.sip}",
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=self.pcap.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def stop(self) -> None:
        stop_sipp(self.proc)


def sip_phone(
    user: str, port: int, scenario: str = "answer", log_dir: Path | None = None
) -> Iterator[SipPhone]:
    phone = SipPhone(user, port, scenario, log_dir)
    phone.start()
    try:
        yield phone
    finally:
        phone.stop()


@contextlib.asynccontextmanager
async def real_caller(
    asterisk: RealAsterisk, number: str, **kwargs: Any
) -> AsyncIterator[RealCaller]:
    caller = await RealCaller.dial(asterisk, number, **kwargs)
    try:
        yield caller
    finally:
        await caller.close()


# --------------------------------------------------------------------------------------------------
# Our agent on the real Asterisk: Supervisor + AriClient with fake engines (tests/fakes/engines.py)


@dataclass
class RealAgent:
    """The agent process's insides, on the real Asterisk (see :func:`running_agent`)."""

    cfg: Config
    ari: AriClient
    sup: Supervisor
    stt: ScriptedStt
    obs: Observer
    tts: EspeakTts

    def speech(self, text: str) -> bytes:
        """Caller speech as 8 kHz μ-law: real synthesized audio, so the VAD sees speech."""
        return self.tts.synthesize(text)

    async def wait_listening(self, timeout_s: float = 30) -> None:
        await asyncio.wait_for(self.obs.is_listening.wait(), timeout_s)
        self.obs.is_listening.clear()


def agent_config(
    asterisk: RealAsterisk,
    *,
    ari_port: int | None = None,
    max_calls: int = 4,
    no_input_timeout_s: float = 5.0,
) -> Config:
    """Our Config pointed at the fixture's ARI (or at a relay in front of it on ``ari_port``)."""
    url = asterisk.ari_url if ari_port is None else f"http://127.0.0.1:{ari_port}/ari"
    # A random 100-port window, as Ports.pick does for Asterisk's own RTP, so parallel runs
    # rarely meet; the pool skips ports in use anyway.
    rtp = random.randrange(30000, 39000, 2)
    cfg = Config(
        ari=AriConfig(
            url=url,
            username=asterisk.ari_auth[0],
            password=asterisk.ari_auth[1],
            app=ARI_APP,
            reconnect_initial_s=0.05,
            reconnect_max_s=0.5,
        ),
        media=MediaConfig(bind_host="127.0.0.1", port_min=rtp, port_max=rtp + 99),
        transfer=TransferConfig(
            front_desk="PJSIP/frontdesk", on_call=["PJSIP/clinician100"], ring_timeout_s=5
        ),
        practice=dataclasses.replace(
            PracticeConfig(),
            greeting="Hello, you have reached the practice. How can I help?",
            # A one-line hours answer instead of the whole week: each test spends less time
            # listening to prompts in real time.
            faq={"hours": "We are open weekdays."},
        ),
    )
    return dataclasses.replace(
        cfg,
        calls=dataclasses.replace(
            cfg.calls, max_concurrent=max_calls, no_input_timeout_s=no_input_timeout_s
        ),
    )


@contextlib.asynccontextmanager
async def running_agent(
    cfg: Config, script: list[str] | None = None, *, cache_dir: str = ""
) -> AsyncIterator[RealAgent]:
    """Start the supervisor on ``cfg``'s ARI; on exit cancel every call and close the client."""
    engines, stt = await fake_engines(cfg, script, tmp_cache=cache_dir)
    obs = Observer()
    ari = AriClient(cfg.ari)
    ari.start()
    sup = Supervisor(cfg, ari, engines, observer=obs, keep_raw_media=True)
    runner = asyncio.create_task(sup.run(), name="supervisor")
    try:
        await ari.wait_connected(5)
        yield RealAgent(cfg, ari, sup, stt, obs, EspeakTts(cfg.tts))
    finally:
        await sup.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await ari.close()
        await engines.aclose()
