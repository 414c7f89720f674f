"""`scripts/demo`: every installed Bulkhead server over HTTP on 127.0.0.1, on its embedded defaults.

Servers announce themselves with a `bulkhead.servers` entry point naming their module, so this
launcher imports none of them: it starts `python -m <module> --transport http` for each, waits
until each logs the port it bound, prints the URLs and a client configuration to paste, relays the
servers' logs to stderr, and stops them all on Ctrl-C. It is a launcher, not a server: what it
prints on stdout is meant for the person who ran it.
"""

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

__all__ = ["main"]

STARTUP_SECONDS = 60


@dataclass
class _Running:
    name: str
    process: subprocess.Popen[bytes]
    port: int | None = None


def _start(name: str, module: str, extra: Sequence[str]) -> _Running:
    command = [sys.executable, "-m", module, "--transport", "http", "--log-format", "json", *extra]
    # Our own interpreter running an installed module: nothing here comes from an untrusted source.
    process = subprocess.Popen(  # noqa: S603
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    return _Running(name, process)


def _watch(server: _Running, ready: threading.Event) -> None:
    assert server.process.stderr is not None
    for raw in server.process.stderr:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and server.port is None and "port" in record:
            server.port = int(record["port"])  # pyright: ignore[reportUnknownArgumentType] -- JSON log record
            ready.set()
        sys.stderr.write(f"[{server.name}] {line}\n")
    ready.set()


def _config(running: list[_Running]) -> str:
    servers = {
        f"bulkhead-{server.name}": {"type": "http", "url": f"http://127.0.0.1:{server.port}/mcp"}
        for server in running
    }
    return json.dumps({"mcpServers": servers}, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the servers, print how to reach them, and wait for Ctrl-C."""
    extra = list(sys.argv[1:] if argv is None else argv)
    found = sorted(entry_points(group="bulkhead.servers"), key=lambda ep: ep.name)
    if not found:
        sys.stderr.write("demo: no Bulkhead server is installed (run ./scripts/uv sync --all-packages)\n")
        return 1
    running: list[_Running] = []
    # All start at once: one after the other, five servers on a busy 2-core machine took longer
    # than a minute to come up.
    starting: list[tuple[str, _Running, threading.Event]] = []
    for entry in found:
        server = _start(entry.name, entry.value, extra)
        ready = threading.Event()
        threading.Thread(target=_watch, args=(server, ready), daemon=True).start()
        starting.append((entry.name, server, ready))
    deadline = time.monotonic() + STARTUP_SECONDS
    for name, server, ready in starting:
        if not ready.wait(max(0.0, deadline - time.monotonic())) or server.port is None:
            # One server that cannot start here (say, no PostgreSQL programs for bulkhead-postgres's
            # embedded database) must not take the others down.
            sys.stderr.write(f"demo: bulkhead-{name} did not start and is left out; see its log above\n")
            _stop([server])
            continue
        running.append(server)
    if not running:
        sys.stderr.write("demo: no server started\n")
        return 1
    lines = ["", "Bulkhead demo: these servers are listening on 127.0.0.1 (Ctrl-C stops them).", ""]
    for server in running:
        base = f"http://127.0.0.1:{server.port}"
        lines.append(f"  bulkhead-{server.name:<10} Streamable HTTP {base}/mcp   SSE {base}/sse")
    lines += [
        "",
        "Client configuration (paste into your client's MCP servers settings):",
        _config(running),
        "",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    stop = threading.Event()

    def request_stop(_signal: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while not stop.wait(0.5):
        if any(server.process.poll() is not None for server in running):
            sys.stderr.write("demo: a server stopped; stopping the others\n")
            break
    _stop(running)
    return 0


def _stop(running: list[_Running]) -> None:
    for server in running:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
    for server in running:
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()


if __name__ == "__main__":
    sys.exit(main())
