"""`structured()` with a dict, and audit records serialised once on their way to a JSON log line."""

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from mcp_types import TextContent
from pydantic import BaseModel, Field, ValidationError

from bulkhead.audit import AuditLog
from bulkhead.logging import JsonFormatter
from bulkhead.results import structured, unchecked_items


class Point(BaseModel):
    name: str
    values: list[int | None]


def test_a_dict_result_carries_the_dict_and_one_compact_text_copy() -> None:
    data = {"name": "café", "values": [1, None], "nested": {"ok": True}}
    result = structured(data)
    assert result.structured_content is data
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, TextContent)
    assert block.text == '{"name":"café","values":[1,null],"nested":{"ok":true}}'


def test_a_dict_result_takes_its_text_copy_from_the_caller_when_given() -> None:
    data = {"rows": [[1, "é"]]}
    result = structured(data, text='{"rows":[[1,"é"]]}')
    assert result.structured_content is data
    assert [getattr(b, "text", None) for b in result.content] == ['{"rows":[[1,"é"]]}']


def test_a_model_and_the_same_dict_give_the_same_result() -> None:
    model = Point(name="p", values=[1, None])
    from_model = structured(model)
    from_dict = structured(model.model_dump(mode="json"))
    assert from_model.structured_content == from_dict.structured_content
    assert [getattr(b, "text", None) for b in from_model.content] == [
        getattr(b, "text", None) for b in from_dict.content
    ]


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("bulkhead.audit")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_an_audit_record_becomes_one_flat_json_line_with_level_and_logger(json_lines: io.StringIO) -> None:
    audit = AuditLog("demo")
    audit.record(
        operation="tools/call",
        target="query",
        arguments={"sql": "SELECT 'ü'", "password": "hunter2"},
        outcome="cancelled",
        started=time.perf_counter(),
        principal="local",
        request_id="7",
        reason="said so",
    )
    (line,) = json_lines.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "info"
    assert record["logger"] == "bulkhead.audit"
    assert record["server"] == "demo"
    assert record["outcome"] == "cancelled"
    assert record["arguments"] == {"sql": "SELECT 'ü'", "password": "[redacted]"}
    assert record["reason"] == "said so"
    assert "hunter2" not in line
    # One object, each key once.
    assert line.count('"outcome"') == 1
    assert line.count('"time"') == 1


def test_unchecked_items_drops_only_the_per_item_schema() -> None:
    class Page(BaseModel):
        names: list[str] = Field(description="Names (strings)", json_schema_extra=unchecked_items)

    published = Page.model_json_schema()["properties"]["names"]
    assert published == {"type": "array", "description": "Names (strings)", "title": "Names"}
    with pytest.raises(ValidationError):
        Page.model_validate({"names": [1]})


def _one_record(audit: AuditLog, request_id: str) -> None:
    audit.record(
        operation="tools/call",
        target="get_user",
        arguments={"user": "u1"},
        outcome="ok",
        started=time.perf_counter(),
        principal="local",
        request_id=request_id,
    )


@pytest.mark.anyio
async def test_on_the_event_loop_an_audit_record_is_written_on_the_next_turn_and_close_writes_the_rest(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog("demo", str(path))
    _one_record(audit, "1")
    _one_record(audit, "2")
    assert path.read_text() == ""  # the answer being written now goes first
    await anyio.lowlevel.checkpoint()
    assert [json.loads(line)["request_id"] for line in path.read_text().splitlines()] == ["1", "2"]
    _one_record(audit, "3")
    audit.close()  # the server stops: nothing pending is lost
    assert [json.loads(line)["request_id"] for line in path.read_text().splitlines()] == ["1", "2", "3"]


def test_outside_an_event_loop_an_audit_record_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog("demo", str(path))
    _one_record(audit, "1")
    assert json.loads(path.read_text())["request_id"] == "1"
    audit.close()
