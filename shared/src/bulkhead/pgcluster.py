"""A throwaway PostgreSQL cluster, built from the machine's own server programs.

The test suite starts one per session, and `bulkhead-postgres` starts one for its embedded demo:
`initdb` into a new directory under the system temp dir, the server on a free `127.0.0.1` port
with its Unix socket in that directory, and at the end the server stopped and the directory
removed. Durability is switched off (`fsync=off`): the data is worthless once the cluster goes.

Where the server programs come from, first match wins (`find_bindir`):

1. An explicit directory, from a setting (it must hold `initdb`, `pg_ctl` and `postgres`).
2. `pg_config --bindir`, if `initdb` is there.
3. `initdb` on `PATH` (symlinks followed, so `/usr/local/bin/initdb -> .../bin/initdb` works).
4. `/usr/lib/postgresql/<version>/bin`, the highest version (Debian / Ubuntu packages).
5. Homebrew (`/opt/homebrew/opt/postgresql@N/bin`, `/usr/local/opt/postgresql@N/bin`) and
   Postgres.app (`/Applications/Postgres.app/Contents/Versions/*/bin`).

`initdb`, `pg_ctl` and `postgres` refuse to run as root, so under root they run as the `postgres`
OS user (or `nobody`), which then owns the cluster's directory.

Authentication: the superuser (`postgres`, no password) is always trusted on the Unix socket,
whose directory only the cluster's owner (and root) can enter. TCP on `127.0.0.1` is `trust` by
default, which suits tests; with `host_auth="scram-sha-256"` every TCP login needs a password, so
other local users of the machine cannot reach the superuser through the loopback port.
"""

import contextlib
import logging
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import quote

__all__ = ["PROGRAMS", "PgClusterError", "ThrowawayCluster", "find_bindir"]

PROGRAMS = ("initdb", "pg_ctl", "postgres")
"""The server programs a cluster needs, all in one directory."""

_logger = logging.getLogger(__name__)

_COMMAND_TIMEOUT = 120
_START_ATTEMPTS = 3
# Durability is worthless for a throwaway cluster; dropping it makes CREATE DATABASE and COMMIT fast.
_SERVER_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


class PgClusterError(RuntimeError):
    """PostgreSQL cannot be found, started or stopped here; the message says why."""


def _has_programs(directory: Path) -> bool:
    return all((directory / name).is_file() and os.access(directory / name, os.X_OK) for name in PROGRAMS)


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


def _from_pg_config() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        # pg_config found on PATH, run without a shell: asking it where the programs are is its job.
        found = subprocess.run(  # noqa: S603
            [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
        )
        directory = Path(found.stdout.strip())
        if _has_programs(directory):
            return directory
    return None


def find_bindir(explicit: str | None = None, *, setting: str | None = None) -> Path:
    """Find the directory of `initdb`, `pg_ctl` and `postgres` (the module docstring has the order).

    Args:
        explicit: a directory named by the user; when given, it is the only candidate.
        setting: the name of the setting `explicit` came from, for the error message.

    Returns:
        The directory holding all three programs.

    Raises:
        PgClusterError: nothing usable was found; the message says where we looked.
    """
    named = f"{setting}={explicit}" if setting else explicit
    if explicit:
        directory = Path(explicit).expanduser()
        if _has_programs(directory):
            return directory
        raise PgClusterError(f"{named} is not a directory holding the programs {', '.join(PROGRAMS)}")
    found = _from_pg_config()
    if found is not None:
        return found
    initdb = shutil.which("initdb")
    if initdb is not None:
        for directory in (Path(initdb).resolve().parent, Path(initdb).parent):
            if _has_programs(directory):
                return directory
    found = _highest([(Path("/usr/lib/postgresql"), "*/bin")]) or _highest(
        [
            (Path("/opt/homebrew/opt"), "postgresql*/bin"),
            (Path("/usr/local/opt"), "postgresql*/bin"),
            (Path("/Applications/Postgres.app/Contents/Versions"), "*/bin"),
        ]
    )
    if found is not None:
        return found
    searched = f"{setting}, " if setting else ""
    raise PgClusterError(
        f"PostgreSQL server programs ({', '.join(PROGRAMS)}) not found; searched {searched}"
        "pg_config --bindir, initdb on PATH, /usr/lib/postgresql/*/bin, Homebrew and Postgres.app. "
        "Install them (Debian: apt-get install postgresql)"
        + (f" or set {setting} to their directory" if setting else "")
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
    raise PgClusterError("running as root, but there is no 'postgres' or 'nobody' user to run PostgreSQL as")


def _last_lines(text: str, count: int = 5) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "(no output)"


class ThrowawayCluster:
    """A PostgreSQL cluster in a temp directory of its own, gone once `destroy()` runs.

    `start()` creates and starts it; `stop()` and `start()` again restart it on the same port
    with its data; `destroy()` (or leaving a `with` block) stops it and removes the directory.
    The superuser has no password: it is trusted on the socket, and on TCP unless `host_auth`
    asks for passwords.
    """

    host = "127.0.0.1"
    """Where the server listens for TCP connections (loopback only)."""

    def __init__(
        self,
        bindir: Path | str | None = None,
        *,
        superuser: str = "postgres",
        host_auth: Literal["trust", "scram-sha-256"] = "trust",
    ) -> None:
        """Prepare a cluster; nothing is created until `start()`.

        Args:
            bindir: the directory of the server programs; found with `find_bindir()` when omitted.
            superuser: the name of the cluster's superuser.
            host_auth: how TCP logins authenticate (the socket always trusts).

        Raises:
            PgClusterError: `bindir` does not hold the programs, or none were found.
        """
        self.bindir = find_bindir(str(bindir) if bindir is not None else None)
        self.superuser = superuser
        self.host_auth: Literal["trust", "scram-sha-256"] = host_auth
        self._base: Path | None = None
        self._port: int | None = None
        self._os_user: pwd.struct_passwd | None = None
        self._destroyed = False

    def __repr__(self) -> str:
        return f"ThrowawayCluster(base={self._base}, port={self._port}, destroyed={self._destroyed})"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.destroy()

    @property
    def base_dir(self) -> Path:
        """The cluster's own temp directory (data, socket and log); it stays known after `destroy()`."""
        if self._base is None:
            raise PgClusterError("the cluster has not been started")
        return self._base

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        """The directory of the server's Unix socket."""
        return self.base_dir

    @property
    def log_file(self) -> Path:
        """The server's log (`pg_ctl -l`)."""
        return self.base_dir / "server.log"

    @property
    def port(self) -> int:
        """The TCP port on `host`, also the number in the socket's file name."""
        if self._port is None:
            raise PgClusterError("the cluster has not been started")
        return self._port

    def dsn(self, database: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        """A TCP connection string for `database` as `user` (the superuser when omitted).

        Args:
            database: the database to connect to.
            user: the role to log in as; the superuser when omitted.
            password: the role's password, when TCP logins need one.

        Returns:
            A `postgresql://` URL with every part percent-encoded.
        """
        login = quote(user or self.superuser, safe="")
        if password is not None:
            login += ":" + quote(password, safe="")
        return f"postgresql://{login}@{self.host}:{self.port}/{quote(database, safe='')}"

    def socket_dsn(self, database: str = "postgres", user: str | None = None) -> str:
        """A connection string over the Unix socket, where the superuser is always trusted.

        Args:
            database: the database to connect to.
            user: the role to log in as; the superuser when omitted.

        Returns:
            A `postgresql://` URL whose `host` parameter is the socket directory.
        """
        login = quote(user or self.superuser, safe="")
        where = quote(str(self.socket_dir), safe="")
        return f"postgresql://{login}@/{quote(database, safe='')}?host={where}&port={self.port}"

    def start(self) -> None:
        """Create the cluster on first use, then start the server and wait until it accepts connections.

        Raises:
            PgClusterError: the cluster could not be created or started (the server log's last
                lines are in the message); a first start leaves no directory behind.
        """
        if self._destroyed:
            raise PgClusterError("the cluster has been destroyed; make a new one")
        if self._base is not None:
            self._start_server()
            return
        self._os_user = _os_user()
        self._base = Path(tempfile.mkdtemp(prefix="bulkhead-pg-"))
        try:
            if self._os_user is not None:
                os.chown(self._base, self._os_user.pw_uid, self._os_user.pw_gid)
            self._initdb()
            for attempt in range(_START_ATTEMPTS):
                self._port = _free_port()
                try:
                    self._start_server()
                    break
                except PgClusterError:
                    # Another process may have taken the port between probing and binding it.
                    if attempt == _START_ATTEMPTS - 1:
                        raise
        except (OSError, subprocess.SubprocessError) as exc:
            self.destroy()
            raise PgClusterError(f"PostgreSQL could not be started: {exc}") from exc
        except BaseException:
            self.destroy()
            raise
        _logger.debug("started a throwaway PostgreSQL cluster in %s on port %d", self._base, self._port)

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are cut) and wait until it is gone; data stays.

        Raises:
            PgClusterError: the server is still running after `pg_ctl stop`.
        """
        done = self._run(self._program("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        if done.returncode != 0 and self.is_running():
            raise PgClusterError(f"pg_ctl stop failed: {_last_lines(done.stderr or done.stdout)}")

    def is_running(self) -> bool:
        """Whether the server is up (`pg_ctl status`); False before `start()` and after `destroy()`."""
        if self._base is None or self._destroyed or not self.data_dir.is_dir():
            return False
        return self._run(self._program("pg_ctl"), "-D", str(self.data_dir), "status").returncode == 0

    def ensure_running(self) -> None:
        """Start the server if it is not running (say, after a test stopped it)."""
        if not self.is_running():
            self.start()

    def destroy(self) -> None:
        """Stop the server if it runs and remove the cluster's directory; safe to call twice."""
        if self._base is None or self._destroyed:
            return
        try:
            if self.is_running():
                self.stop()
        finally:
            self._destroyed = True
            shutil.rmtree(self._base, ignore_errors=True)
            _logger.debug("removed the throwaway PostgreSQL cluster in %s", self._base)

    def _program(self, name: str) -> str:
        return str(self.bindir / name)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["HOME"] = str(self.base_dir)
        user = self._os_user
        # Our own server programs from the bindir, arguments built here: no shell, nothing untrusted.
        return subprocess.run(  # noqa: S603
            args,
            check=False,
            cwd=self.base_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )

    def _initdb(self) -> None:
        """Create the cluster (UTF-8, C.UTF-8 locale where the system has it)."""
        common = [
            self._program("initdb"),
            "-D",
            str(self.data_dir),
            "--auth-local=trust",
            f"--auth-host={self.host_auth}",
            "-U",
            self.superuser,
            "-N",
            "--encoding=UTF8",
        ]
        done = self._run(*common, "--locale=C.UTF-8")
        if done.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            done = self._run(*common)
        if done.returncode != 0:
            raise PgClusterError(f"initdb failed: {_last_lines(done.stderr or done.stdout)}")

    def _start_server(self) -> None:
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
            raise PgClusterError(f"pg_ctl start failed: {_last_lines(log or done.stderr or done.stdout)}")
