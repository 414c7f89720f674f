"""The file backend: JSON and CSV, reload on change, and clear errors for bad files."""

import json
import os
from pathlib import Path

import anyio
import pytest

from bulkhead.testing import connect, stdio_parameters
from bulkhead_users import filedir
from bulkhead_users.filedir import DirectoryFileError, FileDirectory
from bulkhead_users.server import build_server
from tests.users.conftest import make_settings

pytestmark = pytest.mark.anyio

PEOPLE: list[dict[str, object]] = [
    {"id": "a1", "username": "ann", "email": "ann@example.com", "display_name": "Ann Lee", "groups": ["ops"]},
    {"id": "b2", "username": "bo", "email": "bo@example.com", "display_name": "Bo Ng", "manager_id": "a1"},
]


def _write_json(path: Path, people: list[dict[str, object]]) -> None:
    path.write_text(json.dumps(people))


async def test_a_json_list_and_a_users_object_both_load(tmp_path: Path) -> None:
    plain, wrapped = tmp_path / "plain.json", tmp_path / "wrapped.json"
    _write_json(plain, PEOPLE)
    wrapped.write_text(json.dumps({"users": PEOPLE}))
    for path in (plain, wrapped):
        directory = FileDirectory(path)
        await directory.open()
        found = await directory.get("BO@example.com", ("id", "email"))
        assert found is not None
        assert found["id"] == "b2"


async def test_a_csv_file_loads_with_semicolon_separated_groups(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("id,display_name,groups,unknown_column\nc3,Cy Tan,ops; dev ;,x\n", encoding="utf-8")
    directory = FileDirectory(path)
    await directory.open()
    record = await directory.get("c3", ("id",))
    assert record is not None
    assert record["groups"] == ["ops", "dev"]
    assert "unknown_column" not in record


async def test_the_directory_reloads_when_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filedir, "RECHECK_SECONDS", 0.0)
    path = tmp_path / "people.json"
    _write_json(path, PEOPLE)
    directory = FileDirectory(path)
    await directory.open()
    server = build_server(make_settings(audit="off"), directory)
    async with connect(server) as client:
        before = await client.call_tool("get_user", {"user": "c3"})
        _write_json(path, [*PEOPLE, {"id": "c3", "display_name": "Cy Tan"}])
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        after = await client.call_tool("get_user", {"user": "c3"})
    assert before.is_error
    assert not after.is_error


async def test_a_broken_reload_keeps_serving_the_previous_contents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(filedir, "RECHECK_SECONDS", 0.0)
    path = tmp_path / "people.json"
    _write_json(path, PEOPLE)
    directory = FileDirectory(path)
    await directory.open()
    path.write_text("{ not json")
    found = await directory.get("a1", ("id",))
    assert found is not None
    assert "keeping the previous directory" in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{ not json", "not valid JSON"),
        ('{"people": []}', "expected a list"),
        ("[1, 2]", "record 0: expected an object"),
        ('[{"display_name": "No Id"}]', "record 0: the record has no id"),
        ('[{"id": "x"}, {"id": "x"}]', "record 1: duplicate id 'x'"),
        ('[{"id": "x", "groups": 5}]', "groups must be a list"),
        ('[{"id": "x", "groups": [["nested"]]}]', "groups must be a list of strings"),
        ('[{"id": "x", "title": {"nested": 1}}]', "record 0: title must be a string or a number"),
    ],
)
async def test_a_bad_file_is_reported_with_the_record_at_fault(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "people.json"
    path.write_text(content)
    with pytest.raises(DirectoryFileError, match=message):
        await FileDirectory(path).open()


async def test_the_cli_refuses_a_missing_directory_file_with_one_line(tmp_path: Path) -> None:
    params = stdio_parameters("bulkhead_users", ["--directory", str(tmp_path / "missing.json")])
    with anyio.fail_after(30):
        result = await anyio.run_process([params.command, *params.args], env=params.env, check=False)
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert lines[-1].startswith("bulkhead-users: cannot open the directory (directory):")
    assert "Traceback" not in result.stderr.decode()
    assert result.stdout == b""


async def test_direct_reports_work_with_mixed_case_ids(tmp_path: Path) -> None:
    path = tmp_path / "people.json"
    _write_json(path, [{"id": "Boss-1", "display_name": "Boss"}, {"id": "W-2", "manager_id": "Boss-1"}])
    directory = FileDirectory(path)
    await directory.open()
    server = build_server(make_settings(audit="off"), directory)
    async with connect(server) as client:
        result = await client.call_tool("list_direct_reports", {"user": "Boss-1"})
    assert result.structured_content is not None
    assert [user["id"] for user in result.structured_content["reports"]] == ["W-2"]


UNREADABLE = [
    pytest.param("people.csv", b"id,display_name\nx1,Caf\xe9\n", "not UTF-8 text", id="csv-not-utf8"),
    pytest.param(
        "people.csv",
        b'id,display_name\nx1,"' + b"a" * 200_000 + b'"\n',
        "line 2: not readable CSV (field larger than field limit",
        id="csv-field-over-128-kib",
    ),
    pytest.param(
        "people.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply", id="json-nested-too-deeply"
    ),
    pytest.param(
        "people.json", b'[{"id": "x1", "display_name": "Caf\xe9"}]', "not valid JSON", id="json-not-utf8"
    ),
]


@pytest.mark.parametrize(("name", "content", "message"), UNREADABLE)
async def test_an_unreadable_file_is_reported_naming_it(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DirectoryFileError) as raised:
        await FileDirectory(path).open()
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


@pytest.mark.parametrize(("name", "content", "message"), UNREADABLE)
async def test_a_reload_that_meets_an_unreadable_file_keeps_serving_the_previous_contents(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    content: bytes,
    message: str,
) -> None:
    monkeypatch.setattr(filedir, "RECHECK_SECONDS", 0.0)
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_text("id,display_name,groups\na1,Ann Lee,ops\n", encoding="utf-8")
    else:
        _write_json(path, PEOPLE)
    directory = FileDirectory(path)
    await directory.open()
    server = build_server(make_settings(audit="off"), directory)
    path.write_bytes(content)
    async with connect(server) as client:
        result = await client.call_tool("get_user", {"user": "a1"})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["display_name"] == "Ann Lee"
    assert "keeping the previous directory" in caplog.text
    assert message in caplog.text


@pytest.mark.parametrize(("name", "content", "message"), UNREADABLE)
async def test_the_cli_refuses_an_unreadable_file_with_one_line_naming_it(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    params = stdio_parameters("bulkhead_users", ["--directory", str(path)])
    with anyio.fail_after(30):
        result = await anyio.run_process([params.command, *params.args], env=params.env, check=False)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"bulkhead-users: cannot open the directory (directory): {path}: ")
    assert message in lines[0]
    assert result.stdout == b""


async def test_a_shared_email_or_username_finds_the_lowest_id_not_the_first_in_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "people.json"
    _write_json(
        path,
        [
            {"id": "a9", "username": "dup", "email": "dup@example.com"},
            {"id": "B1", "username": "DUP", "email": "Dup@Example.com"},
        ],
    )
    directory = FileDirectory(path)
    await directory.open()
    by_email = await directory.get("DUP@example.com", ("email",))
    by_username = await directory.get("dup", ("username",))
    assert by_email is not None
    assert by_username is not None
    # Code point (byte) order, as PostgreSQL's "C" collation: "B1" < "a9".
    assert by_email["id"] == by_username["id"] == "B1"


async def test_direct_reports_of_one_id_leave_out_those_of_an_id_differing_only_in_case(
    tmp_path: Path,
) -> None:
    path = tmp_path / "people.json"
    _write_json(
        path,
        [
            {"id": "a1", "display_name": "Lower-case boss"},
            {"id": "A1", "display_name": "Upper-case boss"},
            {"id": "r1", "manager_id": "a1"},
            {"id": "r2", "manager_id": "A1"},
        ],
    )
    directory = FileDirectory(path)
    await directory.open()
    server = build_server(make_settings(audit="off"), directory)
    async with connect(server) as client:
        lower = await client.call_tool("list_direct_reports", {"user": "a1"})
        upper = await client.call_tool("list_direct_reports", {"user": "A1"})
    assert lower.structured_content is not None
    assert upper.structured_content is not None
    assert [user["id"] for user in lower.structured_content["reports"]] == ["r1"]
    assert [user["id"] for user in upper.structured_content["reports"]] == ["r2"]


async def test_null_entries_in_a_groups_list_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "people.json"
    path.write_text('[{"id": "x1", "groups": [null, "solo", null]}]')
    directory = FileDirectory(path)
    await directory.open()
    record = await directory.get("x1", ("id",))
    assert record is not None
    assert record["groups"] == ["solo"]
