"""A PostgreSQL the project starts itself, for ``make demo``, tests and a one-box install.

Used when ``DatabaseConfig.dsn`` is empty. It prefers the distribution's PostgreSQL binaries
(``/usr/lib/postgresql/<ver>/bin``); initdb refuses to run as root, so when we are root the cluster
is created and run as the unprivileged system user ``medagent`` (created when missing) through
``runuser``. It listens on a unix socket in the cluster directory only (``listen_addresses=''``):
nothing on the network can reach it. Without system binaries it falls back to ``pgserver`` (a pip
package bundling PostgreSQL 16).

``start()`` is idempotent: a cluster already running in the directory is reused (and then left
running by ``stop()``, since someone else started it).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from agent.errors import StoreError
from agent.log import get_logger

log = get_logger(__name__)

SERVICE_USER = "medagent"
SUPERUSER = "postgres"
_PG_ROOT = Path("/usr/lib/postgresql")


class EmbeddedError(StoreError):
    code = "store_embedded"


def find_pg_bin() -> Path | None:
    """The newest system PostgreSQL ``bin`` directory holding initdb and pg_ctl, if any."""
    env = os.environ.get("MEDAGENT_PG_BIN")
    if env is not None:
        # An explicit choice; one without initdb (e.g. empty) forces the pgserver fallback.
        return Path(env) if env and (Path(env) / "initdb").exists() else None
    if not _PG_ROOT.is_dir():
        return None
    versions = sorted(
        (p for p in _PG_ROOT.iterdir() if (p / "bin" / "initdb").exists()),
        key=lambda p: int(p.name) if p.name.isdigit() else 0,
    )
    return versions[-1] / "bin" if versions else None


def socket_dsn(socket_dir: Path, database: str = "postgres", user: str = SUPERUSER) -> str:
    return f"postgresql://{user}@/{database}?host={quote(str(socket_dir), safe='/')}"


def _ensure_service_user() -> None:
    try:
        pwd.getpwnam(SERVICE_USER)
        return
    except KeyError:
        pass
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
        check=True,
        capture_output=True,
    )
    log.info("created system user for the embedded database", user=SERVICE_USER)


@dataclass
class EmbeddedPostgres:
    """One cluster in ``base_dir`` (``data/`` and the socket live there)."""

    base_dir: Path
    fsync: bool = False
    """``False`` is only for tests and demos: a power cut can corrupt the cluster."""
    started_by_us: bool = field(default=False, init=False)
    _pgserver: object | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).resolve()

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir

    def dsn(self, database: str = "postgres") -> str:
        return socket_dsn(self.socket_dir, database)

    # -- running commands as the right user ---------------------------------------------------

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["runuser", "-u", SERVICE_USER, "--", *argv]

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self._as_owner(argv), capture_output=True, text=True, check=False)
        return proc

    # -- lifecycle ---------------------------------------------------------------------------

    def is_running(self, pg_bin: Path) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return (
            self._run([str(pg_bin / "pg_ctl"), "status", "-D", str(self.data_dir)]).returncode == 0
        )

    def start(self) -> str:
        """Create the cluster if needed, start it unless already running; returns the DSN."""
        pg_bin = find_pg_bin()
        if pg_bin is None:
            return self._start_pgserver()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            _ensure_service_user()
            self._own_base_dir()
            if not self._reachable() or len(str(self.base_dir / ".s.PGSQL.5432")) > 100:
                # A checkout under a root-only folder (/root, a 0700 temp dir) or a path too long for
                # a unix socket: keep the cluster in a fixed place of ours, one per checkout.
                digest = hashlib.sha256(str(self.base_dir).encode()).hexdigest()[:12]
                moved = Path("/var/lib/medagent") / f"embedded-{digest}"
                log.info(
                    "embedded PostgreSQL kept outside the checkout",
                    wanted=str(self.base_dir),
                    dir=str(moved),
                )
                moved.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(moved.parent, 0o755)
                moved.mkdir(exist_ok=True)
                self.base_dir = moved
                self._own_base_dir()
            self._check_reachable()
        if self.is_running(pg_bin):
            log.info("reusing the running embedded PostgreSQL", dir=str(self.base_dir))
            return self.dsn()
        if not (self.data_dir / "PG_VERSION").exists():
            init = self._run(
                [
                    str(pg_bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--no-instructions",
                ]
            )
            if init.returncode != 0:
                raise EmbeddedError(f"initdb failed in {self.data_dir}: {init.stderr.strip()}")
        opts = (
            f"-k {self.socket_dir} -c listen_addresses='' -c fsync={'on' if self.fsync else 'off'}"
        )
        if not self.fsync:
            opts += " -c synchronous_commit=off -c full_page_writes=off"
        started = self._run(
            [
                str(pg_bin / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-o",
                opts,
                "-l",
                str(self.base_dir / "server.log"),
                "-w",
                "-t",
                "30",
                "start",
            ]
        )
        if started.returncode != 0:
            tail = ""
            with_log = self.base_dir / "server.log"
            if with_log.exists():
                tail = with_log.read_text(errors="replace")[-800:]
            raise EmbeddedError(f"pg_ctl start failed: {started.stderr.strip()} {tail}")
        self.started_by_us = True
        log.info("started the embedded PostgreSQL", dir=str(self.base_dir), bin=str(pg_bin))
        return self.dsn()

    def _own_base_dir(self) -> None:
        entry = pwd.getpwnam(SERVICE_USER)
        os.chown(self.base_dir, entry.pw_uid, entry.pw_gid)
        os.chmod(self.base_dir, 0o700)

    def _reachable(self) -> bool:
        return self._run(["test", "-w", str(self.base_dir)]).returncode == 0

    def _check_reachable(self) -> None:
        # The service user must be able to walk down to the directory (a 0700 parent owned by
        # root, like pytest's tmp dirs, would make initdb fail with a confusing message).
        probe = self._run(["test", "-w", str(self.base_dir)])
        if probe.returncode != 0:
            raise EmbeddedError(
                f"{self.base_dir}: the {SERVICE_USER} user cannot reach this directory; "
                "choose an embedded_dir whose parents are world-searchable"
            )

    def stop(self, *, force: bool = False) -> None:
        """Stop the server if we started it (or ``force``); a no-op otherwise."""
        if self._pgserver is not None:
            self._pgserver.cleanup()  # type: ignore[attr-defined]  # pgserver ships no types
            self._pgserver = None
            return
        if not (self.started_by_us or force):
            return
        pg_bin = find_pg_bin()
        if pg_bin is None:
            return
        self._run([str(pg_bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
        self.started_by_us = False

    def destroy(self) -> None:
        """Stop and delete the cluster (tests)."""
        self.stop(force=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def _start_pgserver(self) -> str:
        import pgserver  # only the fallback needs it (34 MB, bundles PostgreSQL 16)

        # pgserver runs ``useradd pgserver`` itself when root; documented side effect.
        get_server = pgserver.get_server  # type: ignore[attr-defined]  # pgserver is untyped
        srv = get_server(str(self.base_dir), cleanup_mode="stop")
        self._pgserver = srv
        self.started_by_us = True
        log.info("started pgserver (no system PostgreSQL found)", dir=str(self.base_dir))
        uri: str = srv.get_uri()
        return uri
