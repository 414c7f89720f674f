"""A real, throwaway PostgreSQL cluster for the test session, and fresh databases in it.

`pg_cluster` (session) runs `initdb` into a new directory under the system temp dir, starts the
server on a free 127.0.0.1 port with trust authentication (superuser `postgres`), and at the end
of the session stops it and removes the directory. `pg_database` (function) is a new, empty
database in that cluster, dropped afterwards; `fresh_database` does the same for fixtures of a
wider scope.

Where the server programs come from, first match wins:

1. `BULKHEAD_TEST_PG_BINDIR` (a directory holding `initdb`, `pg_ctl` and `postgres`). It is read
   once, when the session fixture starts: the per-test environment isolation strips BULKHEAD_*
   variables from tests, not from the session.
2. `pg_config --bindir`, if `initdb` is there.
3. `initdb` on `PATH` (symlinks followed, so `/usr/local/bin/initdb -> .../bin/initdb` works).
4. `/usr/lib/postgresql/<version>/bin`, the highest version (Debian / Ubuntu packages).
5. Homebrew (`/opt/homebrew/opt/postgresql@N/bin`, `/usr/local/opt/postgresql@N/bin`) and
   Postgres.app (`/Applications/Postgres.app/Contents/Versions/*/bin`).

`initdb`, `pg_ctl` and `postgres` refuse to run as root, so under root they run as the
`postgres` OS user (or `nobody`), which owns the cluster's directory.

Without PostgreSQL the tests that need it skip with the reason; under `CI=true` they fail instead,
so a green CI run always means the database tests ran.
"""

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import anyio.to_thread
import asyncpg
import pytest

__all__ = [
    "BINDIR_VARIABLE",
    "PgCluster",
    "PgDatabase",
    "PgUnavailableError",
    "find_bindir",
    "fresh_database",
    "icu_available",
    "pg_cluster",
    "pg_database",
]

BINDIR_VARIABLE = "BULKHEAD_TEST_PG_BINDIR"
"""The environment variable that names the directory of the PostgreSQL server programs."""

_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_COMMAND_TIMEOUT = 120
_START_ATTEMPTS = 3
# Durability is worthless for a throwaway cluster; dropping it makes CREATE DATABASE and COMMIT fast.
_SERVER_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


class PgUnavailableError(RuntimeError):
    """PostgreSQL cannot be found or started here; the message says why."""


def _has_programs(directory: Path) -> bool:
    return all((directory / name).is_file() and os.access(directory / name, os.X_OK) for name in _PROGRAMS)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", str(path)))


def _highest(pattern_roots: list[tuple[Path, str]]) -> Path | None:
    candidates = [
        candidate
        for root, pattern in pattern_roots
        if root.is_dir()
        for candidate in root.glob(pattern)
        if _has_programs(candidate)
    ]
    return max(candidates, key=_version_key) if candidates else None


def find_bindir(explicit: str | None) -> Path:
    """The directory of `initdb`, `pg_ctl` and `postgres` (see the module docstring for the order).

    Raises:
        PgUnavailableError: nothing usable was found; the message lists where we looked.
    """
    if explicit:
        directory = Path(explicit).expanduser()
        if _has_programs(directory):
            return directory
        raise PgUnavailableError(f"{BINDIR_VARIABLE}={explicit} does not hold {', '.join(_PROGRAMS)}")
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
            )
            directory = Path(found.stdout.strip())
            if _has_programs(directory):
                return directory
    initdb = shutil.which("initdb")
    if initdb is not None:
        for directory in (Path(initdb).resolve().parent, Path(initdb).parent):
            if _has_programs(directory):
                return directory
    debian = _highest([(Path("/usr/lib/postgresql"), "*/bin")])
    if debian is not None:
        return debian
    mac = _highest(
        [
            (Path("/opt/homebrew/opt"), "postgresql*/bin"),
            (Path("/usr/local/opt"), "postgresql*/bin"),
            (Path("/Applications/Postgres.app/Contents/Versions"), "*/bin"),
        ]
    )
    if mac is not None:
        return mac
    raise PgUnavailableError(
        f"PostgreSQL server programs not found ({BINDIR_VARIABLE}, pg_config --bindir, initdb on PATH, "
        "/usr/lib/postgresql/*/bin, Homebrew, Postgres.app); install them (Debian: apt-get install "
        f"postgresql) or set {BINDIR_VARIABLE}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _os_user() -> pwd.struct_passwd | None:
    """The OS user the server programs run as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PgUnavailableError(
        "running as root, but there is no 'postgres' or 'nobody' user to run PostgreSQL as"
    )


@dataclass
class PgCluster:
    """A running throwaway cluster: trust authentication, superuser `postgres`, TCP on 127.0.0.1."""

    bindir: Path
    base: Path
    port: int
    os_user: pwd.struct_passwd | None
    host: str = "127.0.0.1"
    user: str = "postgres"

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        """Where the server puts its Unix socket."""
        return self.base

    @property
    def log_file(self) -> Path:
        """The server's log (pg_ctl -l)."""
        return self.base / "server.log"

    def dsn(self, database: str = "postgres") -> str:
        """A connection string for `database` as the superuser (no password: trust auth)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["HOME"] = str(self.base)
        return subprocess.run(
            args,
            check=False,
            cwd=self.base,
            env=env,
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT,
            user=self.os_user.pw_uid if self.os_user else None,
            group=self.os_user.pw_gid if self.os_user else None,
            extra_groups=[] if self.os_user else None,
        )

    def _program(self, name: str) -> str:
        return str(self.bindir / name)

    def initdb(self) -> None:
        """Create the cluster (UTF-8, C.UTF-8 locale where the system has it)."""
        common = [self._program("initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", self.user, "-N"]
        done = self._run(*common, "--encoding=UTF8", "--locale=C.UTF-8")
        if done.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            done = self._run(*common, "--encoding=UTF8")
        if done.returncode != 0:
            raise PgUnavailableError(f"initdb failed: {_last_lines(done.stderr or done.stdout)}")

    def start(self) -> None:
        """Start the server on `port` and wait until it accepts connections."""
        options = f"-c listen_addresses={self.host} -p {self.port} -k {self.socket_dir} {_SERVER_OPTIONS}"
        done = self._run(
            self._program("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        if done.returncode != 0:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            raise PgUnavailableError(f"pg_ctl start failed: {_last_lines(log or done.stderr or done.stdout)}")

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are disconnected) and wait until it is gone."""
        done = self._run(self._program("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        if done.returncode != 0 and self.is_running():
            raise RuntimeError(f"pg_ctl stop failed: {_last_lines(done.stderr or done.stdout)}")

    def is_running(self) -> bool:
        """Whether the server is up (`pg_ctl status`)."""
        return self._run(self._program("pg_ctl"), "-D", str(self.data_dir), "status").returncode == 0

    def ensure_running(self) -> None:
        """Start the server if a test left it stopped."""
        if not self.is_running():
            self.start()

    def destroy(self) -> None:
        """Stop the server if it runs, and remove the cluster's directory."""
        try:
            if self.data_dir.is_dir() and self.is_running():
                self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _last_lines(text: str, count: int = 5) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "(no output)"


def start_cluster(explicit_bindir: str | None) -> PgCluster:
    """Find the programs, create a cluster in a new temp directory, and start it.

    Raises:
        PgUnavailableError: the programs are missing or the cluster would not start.
    """
    bindir = find_bindir(explicit_bindir)
    os_user = _os_user()
    base = Path(tempfile.mkdtemp(prefix="bulkhead-pg-"))
    cluster = PgCluster(bindir=bindir, base=base, port=_free_port(), os_user=os_user)
    try:
        if os_user is not None:
            os.chown(base, os_user.pw_uid, os_user.pw_gid)
        cluster.initdb()
        for attempt in range(_START_ATTEMPTS):
            try:
                cluster.start()
                break
            except PgUnavailableError:
                # Another process may have taken the port between probing and binding it.
                if attempt == _START_ATTEMPTS - 1:
                    raise
                cluster.port = _free_port()
    except BaseException:
        cluster.destroy()
        raise
    return cluster


def _unavailable(reason: str) -> NoReturn:
    message = f"PostgreSQL is not available: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's throwaway PostgreSQL cluster (skips, or fails under CI=true, without one)."""
    try:
        cluster = start_cluster(os.environ.get(BINDIR_VARIABLE))
    except (PgUnavailableError, OSError, subprocess.SubprocessError) as exc:
        _unavailable(str(exc))
    try:
        yield cluster
    finally:
        cluster.destroy()


@dataclass(frozen=True)
class PgDatabase:
    """A database of its own inside the session's cluster."""

    cluster: PgCluster
    name: str

    @property
    def dsn(self) -> str:
        """A superuser connection string for this database."""
        return self.cluster.dsn(self.name)

    async def connect(self) -> asyncpg.Connection:
        """A new superuser connection to this database (close it when done)."""
        return await asyncpg.connect(self.dsn)


async def icu_available(cluster: PgCluster) -> bool:
    """Whether databases can be created with an ICU collation (PostgreSQL 15+ built with ICU)."""
    admin = await asyncpg.connect(cluster.dsn())
    try:
        if admin.get_server_version().major < 15:
            return False
        return bool(await admin.fetchval("SELECT count(*) FROM pg_collation WHERE collprovider = 'i'"))
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_database(cluster: PgCluster, *, icu_locale: str | None = None) -> AsyncGenerator[PgDatabase]:
    """A new empty database for the duration of the block, dropped afterwards (connections and all).

    With `icu_locale` (for example `en-US`) its default collation is that ICU locale's, as on
    many production servers, instead of the cluster's byte-order "C" locale.
    """
    name = f"test_{secrets.token_hex(6)}"
    options = ""
    if icu_locale is not None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", icu_locale):
            raise ValueError(f"not an ICU locale name: {icu_locale!r}")
        options = f" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'"
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{options}')
    finally:
        await admin.close()
    try:
        yield PgDatabase(cluster, name)
    finally:
        if await anyio.to_thread.run_sync(cluster.is_running):
            admin = await asyncpg.connect(cluster.dsn())
            try:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    name,
                )
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            finally:
                await admin.close()


@pytest.fixture
async def pg_database(pg_cluster: PgCluster) -> AsyncIterator[PgDatabase]:
    """A new empty database for one test."""
    async with fresh_database(pg_cluster) as database:
        yield database
