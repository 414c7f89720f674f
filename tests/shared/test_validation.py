"""Argument types and signed cursors."""

import pytest
from pydantic import TypeAdapter, ValidationError

from bulkhead.audit import redact_arguments
from bulkhead.errors import InvalidArgumentError
from bulkhead.validation import CursorCodec, Identifier, PageSize, SearchText


def test_a_cursor_round_trips_for_its_own_scope() -> None:
    codec = CursorCodec(b"k" * 32)
    assert codec.decode(codec.encode(40, ("search", "x")), ("search", "x")) == 40
    assert codec.decode(None, ("search", "x")) == 0
    assert codec.decode("", ("search", "x")) == 0


@pytest.mark.parametrize("scope", [("search", "y"), ("other", "x"), None])
def test_a_cursor_for_another_scope_is_rejected(scope: object) -> None:
    codec = CursorCodec(b"k" * 32)
    with pytest.raises(InvalidArgumentError, match="first page"):
        codec.decode(codec.encode(40, ("search", "x")), scope)


def test_a_cursor_signed_with_another_key_is_rejected() -> None:
    cursor = CursorCodec(b"a" * 32).encode(10, "s")
    with pytest.raises(InvalidArgumentError):
        CursorCodec(b"b" * 32).decode(cursor, "s")


@pytest.mark.parametrize("value", ["", "a b", "x*", "a%b", "ü", "a\x00", "-leading-dash", "a" * 255])
def test_identifiers_reject_odd_characters(value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Identifier).validate_python(value)


@pytest.mark.parametrize("value", ["u00001", "ann.lee@example.com", "a_b-c+d"])
def test_identifiers_accept_ids_emails_and_usernames(value: str) -> None:
    assert TypeAdapter(Identifier).validate_python(value) == value


@pytest.mark.parametrize("value", ["line\nbreak", "tab\t", "nul\x00", "x" * 201])
def test_search_text_rejects_control_characters_and_long_values(value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(SearchText).validate_python(value)


@pytest.mark.parametrize("value", [0, 101, -1])
def test_page_sizes_stay_within_bounds(value: int) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(PageSize).validate_python(value)


def test_redaction_hides_secret_keys_and_cuts_long_values() -> None:
    safe = redact_arguments(
        {
            "api_key": "k",
            "Authorization": "Bearer x",
            "nested": {"password": "p", "ok": "y" * 500},
            "items": list(range(50)),
            "query": "fine",
        }
    )
    assert safe["api_key"] == "[redacted]"
    assert safe["Authorization"] == "[redacted]"
    assert safe["nested"]["password"] == "[redacted]"
    assert len(safe["nested"]["ok"]) < 250
    assert len(safe["items"]) == 21
    assert safe["query"] == "fine"


@pytest.mark.parametrize("edit", ["é", "!!*", " ", "\x00", "=="])
def test_a_cursor_with_foreign_characters_is_rejected_not_a_crash(edit: str) -> None:
    codec = CursorCodec(b"k" * 32)
    cursor = codec.encode(20, "s")
    payload, _, signature = cursor.partition(".")
    for forged in (payload[:3] + edit + payload[3:] + "." + signature, cursor[:-1] + edit):
        with pytest.raises(InvalidArgumentError):
            codec.decode(forged, "s")
