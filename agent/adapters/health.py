"""``/health`` and ``/metrics`` over HTTP on a loopback port (``calls.health_host``/``health_port``).

``/health`` answers 200 with a JSON summary while the agent can take calls and 503 when it cannot
(ARI is down: Asterisk cannot hand us calls, and the dialplan's fallback is taking them). A lost AMI
or database degrades features (``"degraded": ["ami"]``) but calls go on, so they stay 200: a
monitor should page on 503, and warn on ``degraded``. ``/metrics`` is what a ``MetricsPage`` renders:
the running agent's :class:`agent.runtime.metrics.Metrics`, in Prometheus' text format.

The store reports ``database_ok`` (did the database answer the last write, replay or audit-anchor
read), ``spooled`` (records waiting in the spool for the database) and ``quarantined`` (spool files
set aside in ``failed/``: requests that wait for a person, so they degrade as ``spool_quarantine``).

What is healthy is decided by :func:`assess`, a pure function of a :class:`HealthInputs` snapshot;
the server only reads the snapshot and writes the answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from agent.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class HealthInputs:
    ari_connected: bool
    ami_connected: bool | None
    """``None``: AMI is not enabled (``ami.enabled = false``)."""
    active_calls: int
    max_calls: int
    database_ok: bool | None = None
    """``None``: not known (no store wired, or not checked)."""
    spooled: int | None = None
    """Records waiting in the spool for the database; ``None``: no store wired."""
    quarantined: int | None = None
    """Spool files set aside in ``failed/`` (need a person); ``None``: no store wired."""


def assess(inputs: HealthInputs) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body for a snapshot."""
    degraded = []
    if inputs.ami_connected is False:
        degraded.append("ami")
    if inputs.database_ok is False:
        degraded.append("database")
    if inputs.quarantined:
        degraded.append("spool_quarantine")
    if inputs.active_calls >= inputs.max_calls:
        # Full is not broken: new calls go to the fallback by design. Reported so a monitor can
        # tell "busy" from "down" and the admin can see when to raise calls.max_concurrent.
        degraded.append("at_capacity")
    healthy = inputs.ari_connected
    body: dict[str, Any] = {
        "status": ("degraded" if degraded else "ok") if healthy else "unhealthy",
        "ari_connected": inputs.ari_connected,
        "ami_connected": inputs.ami_connected,
        "database_ok": inputs.database_ok,
        "spooled": inputs.spooled,
        "quarantined": inputs.quarantined,
        "active_calls": inputs.active_calls,
        "max_calls": inputs.max_calls,
        "degraded": degraded,
    }
    return (200 if healthy else 503), body


class _Supervised(Protocol):
    @property
    def healthy(self) -> bool: ...
    @property
    def active_calls(self) -> int: ...
    @property
    def max_calls(self) -> int: ...


class _Connected(Protocol):
    @property
    def connected(self) -> bool: ...


class _StoreState(Protocol):
    """``agent.adapters.store.Store``: its last known reachability and the spool's counts."""

    @property
    def database_ok(self) -> bool | None: ...
    @property
    def spooled(self) -> int: ...
    @property
    def quarantined(self) -> int: ...


def supervisor_inputs(
    supervisor: _Supervised,
    *,
    ami: _Connected | None = None,
    store: _StoreState | None = None,
) -> Callable[[], HealthInputs]:
    """A snapshot function over the running parts (``Supervisor``, ``AmiClient``, the store)."""

    def snapshot() -> HealthInputs:
        return HealthInputs(
            ari_connected=supervisor.healthy,
            ami_connected=None if ami is None else ami.connected,
            active_calls=supervisor.active_calls,
            max_calls=supervisor.max_calls,
            database_ok=None if store is None else store.database_ok,
            spooled=None if store is None else store.spooled,
            quarantined=None if store is None else store.quarantined,
        )

    return snapshot


class MetricsPage(Protocol):
    """What ``/metrics`` serves (``agent.runtime.metrics.Metrics``): a page of text, and its type."""

    @property
    def content_type(self) -> str: ...
    def render(self) -> str: ...


class HealthServer:
    """The HTTP endpoint. ``start()`` binds (port 0: any free port) and returns the base URL;
    ``close()`` stops it. Bind it to loopback: the metrics reveal call volumes."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        inputs: Callable[[], HealthInputs],
        metrics: MetricsPage | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._inputs = inputs
        self._metrics = metrics
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics_page)
        self._runner = web.AppRunner(app, access_log=None)
        self.url = ""

    async def start(self) -> str:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.port = port
        self.url = f"http://{host}:{port}"
        log.info("health endpoint listening", url=self.url)
        return self.url

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _health(self, _request: web.Request) -> web.Response:
        status, body = assess(self._inputs())
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")

    async def _metrics_page(self, _request: web.Request) -> web.Response:
        if self._metrics is None:
            return web.Response(status=404, text="metrics are not enabled\n")
        # aiohttp refuses a charset inside content_type; the header is set whole instead.
        return web.Response(
            body=self._metrics.render().encode(),
            headers={"Content-Type": self._metrics.content_type},
        )
