"""bulkhead-users' own settings: a bad table, column map or DSN stops the start with one line."""

import anyio
import pytest

from bulkhead.settings import load_settings
from bulkhead.testing import stdio_parameters
from bulkhead_users.backend import create_directory, opened
from bulkhead_users.settings import UsersSettings

pytestmark = pytest.mark.anyio

PASSWORD = "s3cret-pw-0123456789"
DSN = f"postgresql://reader:{PASSWORD}@127.0.0.1/directory"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--table", "bad-name"], "table (--table / BULKHEAD_USERS_TABLE): 'bad-name' is not a plain SQL"),
        (["--table", "a.b.c"], "'a.b.c' is not a plain SQL identifier"),
        (["--table", "users\n"], "is not a plain SQL identifier"),
        (["--columns", "email=bad-name"], "columns (--columns / BULKHEAD_USERS_COLUMNS): 'bad-name' is not"),
        (["--columns", "email=hr.mail"], "'hr.mail' is not a plain SQL identifier"),
        (["--columns", "shoe_size=size"], "unknown field 'shoe_size'"),
        (["--columns", "email"], "'email' is not field=column"),
        (["--columns", "email=mail,email=address"], "'email' is given a column twice"),
        (["--fields", "id,ssn"], "fields (--fields / BULKHEAD_USERS_FIELDS): unknown field 'ssn'"),
    ],
)
async def test_a_table_column_map_or_field_that_cannot_be_used_is_refused_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        load_settings(UsersSettings, ["--dsn", DSN, *argv])
    stderr = capsys.readouterr().err
    assert exited.value.code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith("bulkhead-users: invalid configuration: ")
    assert message in stderr
    assert PASSWORD not in stderr


async def test_plain_tables_and_columns_are_accepted() -> None:
    settings = load_settings(
        UsersSettings, ["--dsn", DSN, "--table", "hr.people", "--columns", "email=mail,display_name=cn$1"]
    )
    assert settings.table == "hr.people"
    assert settings.column_map() == {"email": "mail", "display_name": "cn$1"}


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
async def test_a_dsn_port_out_of_range_is_refused_as_an_invalid_dsn_without_the_password(
    capsys: pytest.CaptureFixture[str], port: str
) -> None:
    settings = UsersSettings.model_validate({"dsn": f"postgresql://reader:{PASSWORD}@127.0.0.1:{port}/db"})
    with pytest.raises(SystemExit) as exited:
        async with opened(create_directory(settings)):
            pytest.fail("the directory opened")
    stderr = capsys.readouterr().err
    assert exited.value.code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith("bulkhead-users: cannot open the directory (dsn): dsn is not a valid PostgreSQL")
    assert PASSWORD not in stderr


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["--dsn", DSN, "--table", "bad-name"], "bulkhead-users: invalid configuration: table"),
        (["--dsn", DSN, "--columns", "email=bad-name"], "bulkhead-users: invalid configuration: columns"),
        (
            ["--dsn", f"postgresql://reader:{PASSWORD}@127.0.0.1:99999/db"],
            "bulkhead-users: cannot open the directory (dsn): dsn is not a valid",
        ),
    ],
)
async def test_the_cli_refuses_a_bad_table_column_or_port_with_one_line_and_exit_code_2(
    argv: list[str], start: str
) -> None:
    params = stdio_parameters("bulkhead_users", argv)
    with anyio.fail_after(30):
        result = await anyio.run_process([params.command, *params.args], env=params.env, check=False)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(start)
    assert PASSWORD not in lines[0]
    assert result.stdout == b""
