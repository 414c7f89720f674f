"""ServerSettings through bulkhead-users: env vars and flags from one class, comma lists, `--help`,
and invalid configuration stopping the server with one line that names the setting."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from pydantic import ValidationError

from bulkhead.dsn import check_ports
from bulkhead.settings import ConfigError, load_settings, parse_token_pairs
from bulkhead.testing import server_environment
from bulkhead_users.settings import UsersSettings

TOKEN = "0123456789abcdef-token"
OTHER = "fedcba9876543210-token"


def load(argv: list[str]) -> UsersSettings:
    return load_settings(UsersSettings, argv)


def refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one stderr line `load_settings` prints before exiting with code 2."""
    with pytest.raises(SystemExit) as exited:
        load(argv)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("bulkhead-users: invalid configuration: ")
    assert "Traceback" not in lines[0]
    return lines[0]


# --- where values come from -------------------------------------------------------------------


def test_defaults_need_no_configuration() -> None:
    settings = load([])
    assert settings.transport == "stdio"
    assert settings.host == "127.0.0.1"
    assert settings.port == 8101
    assert settings.tokens is None
    assert settings.allowed_hosts == []
    assert settings.token_table() == {}
    assert "phone" not in settings.fields


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("BULKHEAD_USERS_TRANSPORT", "http", "transport", "http"),
        ("BULKHEAD_USERS_PORT", "9123", "port", 9123),
        ("BULKHEAD_USERS_HOST", "::1", "host", "::1"),
        ("BULKHEAD_USERS_LOG_LEVEL", "debug", "log_level", "debug"),
        ("BULKHEAD_USERS_LOG_FORMAT", "text", "log_format", "text"),
        ("BULKHEAD_USERS_AUDIT", "off", "audit", "off"),
        ("BULKHEAD_USERS_STATELESS_HTTP", "true", "stateless_http", True),
        ("BULKHEAD_USERS_STATELESS_HTTP", "1", "stateless_http", True),
        ("BULKHEAD_USERS_ALLOW_UNAUTHENTICATED", "yes", "allow_unauthenticated", True),
        (
            "BULKHEAD_USERS_ALLOWED_HOSTS",
            "a.example,b.example:8443",
            "allowed_hosts",
            ["a.example", "b.example:8443"],
        ),
        ("BULKHEAD_USERS_ALLOWED_ORIGINS", "https://app.example", "allowed_origins", ["https://app.example"]),
        ("BULKHEAD_USERS_FIELDS", "id,email", "fields", ["id", "email"]),
        (
            "BULKHEAD_USERS_COLUMNS",
            "email=mail,display_name=cn",
            "columns",
            ["email=mail", "display_name=cn"],
        ),
        ("BULKHEAD_USERS_TABLE", "hr.people", "table", "hr.people"),
        ("BULKHEAD_USERS_POOL_SIZE", "7", "pool_size", 7),
    ],
)
def test_every_setting_is_read_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, attribute: str, expected: object
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load([]), attribute) == expected


@pytest.mark.parametrize(
    ("argv", "attribute", "expected"),
    [
        (["--transport", "http"], "transport", "http"),
        (["--port", "0"], "port", 0),
        (["--port=65535"], "port", 65535),
        (["--log-level", "error"], "log_level", "error"),
        (["--stateless-http"], "stateless_http", True),
        (["--allowed-hosts", "mcp.example.com"], "allowed_hosts", ["mcp.example.com"]),
        (["--fields", "id,title"], "fields", ["id", "title"]),
        (["--directory", "/srv/users.json"], "directory", Path("/srv/users.json")),
    ],
)
def test_every_setting_is_read_from_its_flag(argv: list[str], attribute: str, expected: object) -> None:
    assert getattr(load(argv), attribute) == expected


def test_a_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULKHEAD_USERS_PORT", "9000")
    monkeypatch.setenv("BULKHEAD_USERS_STATELESS_HTTP", "true")
    settings = load(["--port", "9001", "--no-stateless-http"])
    assert settings.port == 9001
    assert settings.stateless_http is False


@pytest.mark.parametrize("variable", ["BULKHEAD_PORT", "BULKHEAD_FILES_PORT", "USERS_PORT", "PORT"])
def test_variables_with_another_prefix_are_ignored(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "1234")
    assert load([]).port == 8101


@pytest.mark.parametrize(
    "spelling",
    ["id,email", " id , email ", "id,,email", "id,email,", '["id", "email"]', ' ["id","email"] '],
)
@pytest.mark.parametrize("source", ["flag", "env"])
def test_a_list_setting_accepts_commas_or_a_json_list(
    monkeypatch: pytest.MonkeyPatch, spelling: str, source: str
) -> None:
    if source == "env":
        monkeypatch.setenv("BULKHEAD_USERS_FIELDS", spelling)
        monkeypatch.setenv("BULKHEAD_USERS_ALLOWED_HOSTS", spelling)
        settings = load([])
    else:
        settings = load(["--fields", spelling, "--allowed-hosts", spelling])
    assert settings.fields == settings.allowed_hosts == ["id", "email"]


def test_an_empty_list_setting_means_none() -> None:
    assert load(["--allowed-origins", ""]).allowed_origins == []


# --- tokens -----------------------------------------------------------------------------------


def test_tokens_from_the_flag_and_the_file_are_merged_by_name(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"# the CI runner\nci:{OTHER}\n\n")
    settings = load(["--tokens", f"alice:{TOKEN}", "--tokens-file", str(tokens_file)])
    assert settings.token_table() == {TOKEN: "alice", OTHER: "ci"}


@pytest.mark.parametrize("separator", [",", "\n", " , ", ",\n"])
def test_token_pairs_are_separated_by_commas_or_newlines(separator: str) -> None:
    text = f"alice:{TOKEN}{separator}bob:{OTHER}"
    assert parse_token_pairs(text, source="tokens") == {TOKEN: "alice", OTHER: "bob"}


def test_a_token_may_contain_colons() -> None:
    assert parse_token_pairs("svc:abc:def:0123456789abcdef", source="tokens") == {
        "abc:def:0123456789abcdef": "svc"
    }


@pytest.mark.parametrize(
    "text",
    [
        "nocolon0123456789abcdef",
        f":{TOKEN}",
        "name:",
        "name:   ",
        "a:short",
        f"a:{TOKEN},b:{TOKEN}",
        f"a:{TOKEN},garbage",
    ],
)
def test_a_bad_token_entry_is_a_config_error_that_does_not_show_the_token(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_token_pairs(text, source="tokens")
    assert str(raised.value).startswith("tokens: ")
    assert TOKEN not in str(raised.value)


def test_secrets_never_appear_in_the_settings_repr() -> None:
    settings = load(
        [
            "--tokens",
            f"alice:{TOKEN}",
            "--cursor-secret",
            "cursor-secret-value",
            "--dsn",
            "postgresql://u:db-password@h/d",
        ]
    )
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in (TOKEN, "cursor-secret-value", "db-password"):
        assert secret not in shown


# --- exposure ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_addresses_need_no_tokens(host: str) -> None:
    settings = load(["--transport", "http", "--host", host])
    assert settings.is_loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "mcp.example.com"])
def test_stdio_does_not_care_what_host_says(host: str) -> None:
    settings = load(["--host", host])
    assert not settings.is_loopback


def test_an_exposed_http_server_with_tokens_and_allowed_hosts_is_accepted() -> None:
    settings = load(
        [
            "--transport",
            "http",
            "--host",
            "0.0.0.0",
            "--tokens",
            f"a:{TOKEN}",
            "--allowed-hosts",
            "mcp.example.com",
        ]
    )
    assert not settings.is_loopback


# --- refusals, in process (many payloads) -------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--port", "-1"], "port"),
        (["--port", "65536"], "port"),
        (["--port", "eighty"], "port"),
        (["--port", "80.5"], "port"),
        (["--port", ""], "port"),
        (["--transport", "sse"], "transport"),
        (["--transport", "HTTP"], "transport"),
        (["--transport", "stdio,http"], "transport"),
        (["--log-level", "verbose"], "log_level"),
        (["--log-format", "xml"], "log_format"),
        (["--pool-size", "0"], "pool_size"),
        (["--fields", "ssn"], "fields"),
        (["--fields", "id,salary"], "fields"),
        (["--fields", "ID"], "fields"),
        (["--fields", '["id", "password"]'], "fields"),
        (["--fields", "[broken"], "fields"),
        (["--columns", "email"], "columns"),
        (["--columns", "nonsense=col"], "columns"),
        (["--tokens", "justonetoken0123456789"], "tokens"),
        (["--tokens", "ci:short"], "tokens"),
        (["--tokens", f"a:{TOKEN},b:{TOKEN}"], "tokens"),
        (["--tokens-file", "/nonexistent/tokens"], "tokens_file"),
        (["--audit", "/nonexistent/dir/audit.log"], "audit"),
        (["--audit", "/"], "audit"),
        (["--no-such-flag"], "--no-such-flag"),
        (["--port"], "--port"),
        (["--stateless-http=maybe"], "--stateless-http"),
        (["positional"], "positional"),
        (["--transport", "http", "--host", "0.0.0.0"], "host"),
        (["--transport", "http", "--host", "192.0.2.10"], "host"),
        (["--transport", "http", "--host", "0.0.0.0", "--allowed-hosts", "mcp.example.com"], "host"),
        (["--transport", "http", "--host", "10.1.2.3", "--tokens", f"a:{TOKEN}"], "allowed_hosts"),
        (
            ["--transport", "http", "--host", "::", "--tokens", f"a:{TOKEN}", "--allowed-hosts", ""],
            "allowed_hosts",
        ),
        (["--transport", "http", "--host", "0.0.0.0", "--allow-unauthenticated"], "allowed_hosts"),
    ],
)
def test_invalid_configuration_is_one_line_naming_the_setting(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refusal(argv, capsys)
    assert named in line
    assert TOKEN not in line


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("BULKHEAD_USERS_PORT", "http", "BULKHEAD_USERS_PORT"),
        ("BULKHEAD_USERS_TRANSPORT", "carrier-pigeon", "BULKHEAD_USERS_TRANSPORT"),
        ("BULKHEAD_USERS_FIELDS", "id,ssn", "BULKHEAD_USERS_FIELDS"),
        ("BULKHEAD_USERS_STATELESS_HTTP", "perhaps", "BULKHEAD_USERS_STATELESS_HTTP"),
        ("BULKHEAD_USERS_TOKENS", "no-colon-0123456789", "tokens"),
    ],
)
def test_an_invalid_environment_variable_is_named_in_the_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert named in refusal([], capsys)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"ci:\xff\xfe0123456789abcdef\n", "not UTF-8"),
        (b"# only a comment\nci short-token-without-colon\n", "entry 2"),
        (b"ci:short\n", "shorter than 16"),
    ],
)
def test_a_bad_tokens_file_is_one_line_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_bytes(content)
    line = refusal(["--tokens-file", str(tokens_file)], capsys)
    assert "tokens_file" in line
    assert message in line


def test_a_directory_as_tokens_file_is_one_line_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refusal(["--tokens-file", str(tmp_path)], capsys)
    assert "tokens_file" in line
    assert "cannot read" in line


# --- the real CLI, as a subprocess ------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


CLI_REFUSALS: dict[str, tuple[list[str], dict[str, str], str]] = {
    "port out of range": (["--port", "70000"], {}, "port"),
    "port from env not a number": ([], {"BULKHEAD_USERS_PORT": "http"}, "BULKHEAD_USERS_PORT"),
    "unknown transport": (["--transport", "websocket"], {}, "transport"),
    "short token": (["--tokens", "ci:tiny"], {}, "tokens"),
    "tokens file not UTF-8": (["--tokens-file", "{not_utf8}"], {}, "tokens_file"),
    "unknown field": (["--fields", "id,ssn"], {}, "fields"),
    "unknown flag": (["--no-such-flag"], {}, "--no-such-flag"),
}


@pytest.fixture(scope="module")
async def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every CLI case at once: each is a whole interpreter start, so they run side by side."""
    not_utf8 = tmp_path_factory.mktemp("cli") / "tokens"
    not_utf8.write_bytes(b"ci:\xff0123456789abcdefgh\n")
    cases = {name: (args, env) for name, (args, env, _) in CLI_REFUSALS.items()}
    cases["help"] = (["--help"], {})
    runs: dict[str, Run] = {}
    limiter = anyio.CapacityLimiter(4)

    async def run(name: str, args: list[str], env: dict[str, str]) -> None:
        argv = [arg.replace("{not_utf8}", str(not_utf8)) for arg in args]
        async with limiter:
            done = await anyio.run_process(
                [sys.executable, "-m", "bulkhead_users", *argv],
                env=server_environment(env),
                stdin=subprocess.DEVNULL,
                check=False,
            )
        runs[name] = Run(done.returncode, done.stdout.decode(), done.stderr.decode())

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for name, (args, env) in cases.items():
                tg.start_soon(run, name, args, env)
    return runs


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(CLI_REFUSALS))
async def test_the_cli_refuses_invalid_configuration_with_one_line_and_exit_code_2(
    cli_runs: dict[str, Run], case: str
) -> None:
    run = cli_runs[case]
    named = CLI_REFUSALS[case][2]
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("bulkhead-users: invalid configuration: ")
    assert named in lines[0]
    assert "Traceback" not in run.stderr


@pytest.mark.anyio
async def test_help_lists_every_setting_with_its_flag_env_var_and_help_text(cli_runs: dict[str, Run]) -> None:
    run = cli_runs["help"]
    assert run.returncode == 0
    assert run.stderr == ""
    text = " ".join(run.stdout.split())
    for name, field in UsersSettings.model_fields.items():
        assert f"--{name.replace('_', '-')}" in text, name
        assert f"BULKHEAD_USERS_{name.upper()}" in text, name
        assert field.description
        assert " ".join(field.description.split()[:6]) in text, name


def test_a_mistyped_flag_is_named_without_its_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        load_settings(UsersSettings, ["--token", "ci:Sup3rSecretValue-0123456789"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "--token" in err
    assert "Sup3rSecret" not in err


@pytest.mark.parametrize("sink", ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"])
def test_the_audit_sink_cannot_be_stdout(sink: str) -> None:
    with pytest.raises(ValidationError, match="protocol channel"):
        UsersSettings(audit=sink)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://reader:secret@127.0.0.1:99999/db",
        "postgresql://reader:secret@h1:5432,h2:70000/db",
        "postgresql://reader:secret@h/db?port=0",
        "postgres://reader:secret@[::1]:65536/db",
    ],
)
def test_a_dsn_port_outside_1_to_65535_is_refused_without_quoting_the_dsn(dsn: str) -> None:
    with pytest.raises(ValueError, match="port") as raised:
        check_ports(dsn)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://reader:secret@127.0.0.1:5432/db",
        "postgresql://reader:secret@[::1]/db",
        "postgresql://reader:secret@h1,h2:6432/db?port=5432,5433",
        "postgresql:///db?host=/var/run/postgresql",
        "host=localhost port=5432 dbname=db",
    ],
)
def test_a_dsn_with_usable_ports_passes_the_port_check(dsn: str) -> None:
    check_ports(dsn)
