"""Checks that need more than a field's type: spans across fields, time zones, office hours,
and which transports may carry a password in clear."""

from __future__ import annotations

import ipaddress
from datetime import date
from urllib.parse import urlsplit

from agent.config.coercion import _Load
from agent.config.domains import DOMAINS
from agent.config.sections import Config
from agent.core.office import WEEKDAYS, parse_span
from agent.errors import ConfigError


def _check_domains(cfg: Config, file: str) -> None:
    for key, domain in DOMAINS.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if not domain.holds(value):
            raise ConfigError(
                f"expected {domain.describe(isinstance(value, int))}, got {value!r}",
                file=file,
                key=key,
            )


def _check_values(cfg: Config, file: str) -> None:
    """Checks that span fields or need more than a type."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    m = cfg.media
    if not (1024 <= m.port_min <= m.port_max <= 65535):
        raise ConfigError(
            f"expected 1024 <= port_min <= port_max <= 65535, got {m.port_min}-{m.port_max}",
            file=file,
            key="media.port_min",
        )
    try:
        ZoneInfo(cfg.practice.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {cfg.practice.timezone!r}; expected an IANA name such as America/New_York",
            file=file,
            key="practice.timezone",
        ) from None
    for day, span in cfg.practice.office_hours.items():
        if day not in WEEKDAYS:
            raise ConfigError(
                f"expected a weekday ({', '.join(WEEKDAYS)})",
                file=file,
                key=f"practice.office_hours.{day}",
            )
        try:
            parse_span(span)
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, key=f"practice.office_hours.{day}") from None
    for i, day_s in enumerate(cfg.practice.holidays):
        try:
            date.fromisoformat(day_s)
        except ValueError:
            raise ConfigError(
                f"expected an ISO date like 2026-12-25, got {day_s!r}",
                file=file,
                key=f"practice.holidays[{i}]",
            ) from None
    for i, entry in enumerate(cfg.practice.pharmacies):
        # The same split as agent.engines.nlu.entities.pharmacies.local_pharmacy.
        if not entry.partition(",")[0].strip():
            raise ConfigError(
                f'expected "name, street" such as "Hilltop Drug, Route 9", got {entry!r}',
                file=file,
                key=f"practice.pharmacies[{i}]",
            )
    if not cfg.ari.url.startswith(("http://", "https://")):
        raise ConfigError(f"expected an http(s) URL, got {cfg.ari.url!r}", file=file, key="ari.url")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine without a DNS lookup (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def _check_transport(cfg: Config, load: _Load) -> None:
    """Plain-text ARI and AMI carry their passwords in clear: only to this machine, unless TLS is
    used or the admin said so (and is reminded at every start)."""
    a = cfg.ari
    try:
        url = urlsplit(a.url)
        host = url.hostname
        _ = url.port  # raises for a port out of range
    except ValueError as exc:
        raise ConfigError(f"not a valid URL ({exc})", file=load.file, key="ari.url") from None
    if not host:
        raise ConfigError(
            f"expected http(s)://HOST:PORT/ari, got {a.url!r}", file=load.file, key="ari.url"
        )
    if url.scheme == "http" and not is_loopback(host):
        if not a.allow_insecure_lan:
            raise ConfigError(
                f"plain http:// to {host} would send the ARI password and call control "
                "unencrypted across the network; use https:// (TLS in Asterisk's http.conf: "
                "tlsenable, tlsbindaddr, tlscertfile) or run the agent on the Asterisk host "
                "(http://127.0.0.1:8088/ari); on a trusted LAN you may set "
                "ari.allow_insecure_lan = true",
                file=load.file,
                key="ari.url",
            )
        load.warn(
            f"plain http:// to {host} (ari.allow_insecure_lan = true): the ARI password and "
            "call control cross the network unencrypted",
            "ari.url",
        )
    m = cfg.ami
    if m.enabled and not is_loopback(m.host):
        if not m.allow_insecure_lan:
            raise ConfigError(
                f"plain AMI to {m.host} would send the AMI secret unencrypted across the network "
                "(the agent's AMI client has no TLS); run the agent on the Asterisk host "
                '(host = "127.0.0.1") or tunnel AMI to a loopback port (ssh -L, stunnel); on a '
                "trusted LAN you may set ami.allow_insecure_lan = true",
                file=load.file,
                key="ami.host",
            )
        load.warn(
            f"plain AMI to {m.host} (ami.allow_insecure_lan = true): the AMI secret crosses the "
            "network unencrypted",
            "ami.host",
        )
