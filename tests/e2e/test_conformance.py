"""The official MCP conformance suite against each Bulkhead server over Streamable HTTP.

The suite (`@modelcontextprotocol/conformance`) and the Node 22 it needs (the `node` package on
npm, which ships the Node binary) are pinned in tests/conformance/package-lock.json. The first
run installs them there with `npm ci`; later runs reuse that install until package.json or the
lock file changes. Without npm, or when the install fails, the tests skip with the reason; under
`CI=true` they fail instead, so a green CI run always means the suite ran.

The suite's server scenarios are written against the "everything" reference server: most call
its fixture tools, resources and prompts by name (`test_simple_text`, `test://static-text`, ...).
The scenarios that check protocol behaviour every server owes (`GENERIC_SCENARIOS`) run against
every server; a server that can serve a scenario's fixtures runs those scenarios too (`SERVERS`:
bulkhead-prompts serves the prompt fixtures from tests/conformance/library, bulkhead-files the
resource subscriptions). Every other scenario
of the pinned version is listed, with the reason, in `EXCLUDED_SCENARIOS`.
"""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import anyio
import pytest

from bulkhead.testing import http_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CONFORMANCE_DIR = Path(__file__).resolve().parent.parent / "conformance"
NODE_MODULES = CONFORMANCE_DIR / "node_modules"
NODE = NODE_MODULES / ".bin" / "node"
CLI = NODE_MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
INSTALLED_MARKER = NODE_MODULES / ".bulkhead-installed"
"""Holds the digest of the package files `npm ci` last installed (npm ci deletes it with the rest)."""

NPM_TIMEOUT = 600
SCENARIO_TIMEOUT = 60

GENERIC_SCENARIOS = (
    "server-initialize",  # the initialize handshake over Streamable HTTP
    "ping",  # answers ping with {}
    "tools-list",  # every tool has a name, a description and an inputSchema
    "resources-list",  # resources/list is well formed (empty: we serve a template, no fixed resources)
    "prompts-list",  # MCPServer always advertises `prompts`, so prompts/list must answer (empty)
    "server-sse-multiple-streams",  # concurrent POSTs in one session each get a working stream
    "dns-rebinding-protection",  # loopback without auth: foreign Host/Origin get 4xx, loopback 2xx
)

PROMPT_SCENARIOS = (
    # Served from the fixture library tests/conformance/library, which holds the prompts these
    # scenarios ask for by name (test_simple_prompt, test_prompt_with_arguments, ...).
    "completion-complete",
    "prompts-get-simple",
    "prompts-get-with-args",
    "prompts-get-embedded-resource",
    "prompts-get-with-image",
)

RESOURCE_SUBSCRIPTION_SCENARIOS = (
    # bulkhead-files serves resources/subscribe and resources/unsubscribe (any URI is accepted;
    # only files under the roots ever produce updates).
    "resources-subscribe",
    "resources-unsubscribe",
)

SERVERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # module: (scenarios, extra command-line arguments)
    "bulkhead_users": (GENERIC_SCENARIOS, ()),
    "bulkhead_postgres": (GENERIC_SCENARIOS, ()),
    # Zero-config: wraps its own demo tracker, started in-process on 127.0.0.1.
    "bulkhead_http": (GENERIC_SCENARIOS, ()),
    "bulkhead_files": (GENERIC_SCENARIOS + RESOURCE_SUBSCRIPTION_SCENARIOS, ()),
    "bulkhead_prompts": (
        GENERIC_SCENARIOS + PROMPT_SCENARIOS,
        ("--library", str(CONFORMANCE_DIR / "library")),
    ),
}
"""Which scenarios each server runs, and how it is started for them."""

APPLICABLE_SCENARIOS = tuple(
    sorted({scenario for scenarios, _ in SERVERS.values() for scenario in scenarios})
)
"""Every scenario that runs against at least one server."""

EXCLUDED_SCENARIOS = (
    # They call the everything server's fixture tools (test_simple_text, test_image_content,
    # test_audio_content, test_embedded_resource, test_multiple_content_types,
    # test_tool_with_logging, test_error_handling, test_tool_with_progress). simple-text and
    # error would pass by accident: an unknown tool comes back as an isError result with text.
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-with-logging",
    "tools-call-error",
    "tools-call-with-progress",
    # Server-to-client sampling and elicitation through fixture tools (test_sampling,
    # test_elicitation, test_elicitation_sep1034_defaults, test_elicitation_sep1330_enums): a
    # read-only lookup server never asks the client for anything.
    "tools-call-sampling",
    "tools-call-elicitation",
    "elicitation-sep1034-defaults",
    "elicitation-sep1330-enums",
    # Fixture tools again (json_schema_2020_12_tool; test_reconnection, which must drop its SSE
    # stream mid-call so the client resumes with Last-Event-ID); both are in the suite's
    # "pending" group, not its default "active" one.
    "json-schema-2020-12",
    "server-sse-polling",
    # We do not advertise `logging` (logs go to stderr; MCP log notifications are deprecated in
    # 2026-07-28), so logging/setLevel rightly answers -32601.
    "logging-set-level",
    # Fixed fixture resources (test://static-text, test://static-binary) and the fixture
    # template test://template/{id}/data, which no server of ours serves (bulkhead-files serves
    # file:// only). Our own templates and reads are covered by our own tests.
    "resources-read-text",
    "resources-read-binary",
    "resources-templates-read",
)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TALLY = re.compile(r"^Passed: (\d+)/(\d+), (\d+) failed", re.MULTILINE)


def _unavailable(reason: str) -> NoReturn:
    message = f"MCP conformance suite unavailable: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _package_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((CONFORMANCE_DIR / name).read_bytes())
    return digest.hexdigest()


def _installed(digest: str) -> bool:
    return (
        NODE.is_file()
        and CLI.is_file()
        and INSTALLED_MARKER.is_file()
        and INSTALLED_MARKER.read_text(encoding="utf-8") == digest
    )


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _install() -> None:
    digest = _package_digest()
    if _installed(digest):
        return
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm is not on PATH (install Node.js with npm to run it)")
    # npm ci never writes the lock file, so it doubles as the lock that keeps two test
    # processes from installing into the same node_modules at once.
    with (CONFORMANCE_DIR / "package-lock.json").open("rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(digest):
            return
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=CONFORMANCE_DIR,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            _unavailable(f"`npm ci` in {CONFORMANCE_DIR} took longer than {NPM_TIMEOUT} s")
        if done.returncode != 0:
            _unavailable(f"`npm ci` in {CONFORMANCE_DIR} failed ({done.returncode}):\n{_tail(done.stderr)}")
        if not NODE.is_file() or not CLI.is_file():
            _unavailable(
                f"`npm ci` left no {NODE.relative_to(CONFORMANCE_DIR)} or CLI: the `node` package's "
                "install script must run (is ignore-scripts set?)"
            )
        INSTALLED_MARKER.write_text(digest, encoding="utf-8")


@pytest.fixture(scope="module")
def conformance() -> list[str]:
    """The command prefix that runs the pinned conformance CLI on the pinned Node."""
    _install()
    try:
        done = subprocess.run([NODE, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as error:
        _unavailable(f"{NODE} does not run here: {error}")
    if done.returncode != 0:
        _unavailable(f"{NODE} --version failed ({done.returncode}): {_tail(done.stderr)}")
    return [str(NODE), str(CLI)]


def _plain(output: bytes) -> str:
    return _ANSI.sub("", output.decode("utf-8", "replace"))


async def test_every_server_scenario_of_the_pinned_suite_is_classified(conformance: list[str]) -> None:
    done = await anyio.run_process([*conformance, "list", "--server"])
    listed = set(re.findall(r"^\s+- (\S+)", _plain(done.stdout), re.MULTILINE))
    assert listed, _plain(done.stdout)
    assert not set(APPLICABLE_SCENARIOS) & set(EXCLUDED_SCENARIOS)
    assert set(APPLICABLE_SCENARIOS) | set(EXCLUDED_SCENARIOS) == listed


@pytest.mark.parametrize(
    "module",
    [
        # On its embedded demo database (a throwaway cluster), so it needs PostgreSQL's programs.
        pytest.param(module, marks=pytest.mark.postgres) if module == "bulkhead_postgres" else module
        for module in SERVERS
    ],
)
async def test_server_passes_every_applicable_conformance_scenario(
    conformance: list[str], module: str, request: pytest.FixtureRequest
) -> None:
    if module == "bulkhead_postgres":
        request.getfixturevalue("pg_cluster")  # skips locally (fails under CI) without PostgreSQL
    failures: list[str] = []
    # Each run spends about half a second of CPU loading the CLI: one run per core at a time.
    limiter = anyio.CapacityLimiter(os.cpu_count() or 1)
    scenarios, args = SERVERS[module]
    async with http_server(module, args, startup_timeout=90) as server:

        async def run(scenario: str) -> None:
            command = [*conformance, "server", "--url", server.mcp_url, "--scenario", scenario]
            async with limiter:
                with anyio.fail_after(SCENARIO_TIMEOUT):
                    done = await anyio.run_process(command, check=False)
            output = _plain(done.stdout) + _plain(done.stderr)
            tally = _TALLY.search(output)
            # Exit 0 alone is not enough: a scenario that ran no checks must not count as passed.
            if done.returncode != 0 or tally is None or tally[1] != tally[2] or tally[2] == "0":
                failures.append(f"=== {scenario}: exit {done.returncode}\n{output}")

        async with anyio.create_task_group() as tg:
            for scenario in scenarios:
                tg.start_soon(run, scenario)
        server_log = "\n".join(server.stderr_lines[-30:])
    assert not failures, "\n".join(sorted(failures)) + f"\n=== server stderr (last lines)\n{server_log}"
