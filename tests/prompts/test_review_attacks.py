"""Adversarial review: prompts attacks the first test round did not cover, through a real client."""

from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from bulkhead.testing import connect
from bulkhead_prompts.library import Library
from tests.prompts.conftest import ServerFactory, write, write_prompt

pytestmark = pytest.mark.anyio

FRONT = "---\ndescription: x\n---\n"
TOO_DEEP_TO_PARSE = {
    "parens.md": FRONT + "{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}\n",
    "lists.md": FRONT + "{{ " + "[" * 500 + "]" * 500 + " }}\n",
    "ifs.md": FRONT + "{% if true %}" * 600 + "x" + "{% endif %}" * 600 + "\n",
    "filters.md": FRONT + "{{ 1" + "|abs" * 3000 + " }}\n",
}
TOO_DEEP_TO_COMPILE = {
    "loops.md": FRONT + "{% for i in [1] %}" * 25 + "x" + "{% endfor %}" * 25 + "\n",  # Python: 20 blocks
    "indent.md": FRONT + "{% if true %}" * 150 + "x" + "{% endif %}" * 150 + "\n",  # Python: 100 levels
}


def test_templates_nested_too_deeply_to_parse_are_reported_and_the_rest_still_served(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    write_prompt(root, "fine.md", {"name": "fine", "description": "x"}, "Hi\n")
    for name, text in TOO_DEEP_TO_PARSE.items():
        write(root, name, text)
    library = Library(root)
    library.load_all()  # one such file used to raise RecursionError out of the whole load
    assert [spec.name for spec in library.prompts()] == ["fine"]
    lines = [str(p) for p in library.problems]
    for name in TOO_DEEP_TO_PARSE:
        assert f"{name}:4: template syntax: nested too deeply" in lines, lines


async def test_templates_too_deep_for_python_fail_cleanly_at_get_and_the_server_keeps_serving(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    root = tmp_path / "lib"
    write_prompt(root, "fine.md", {"name": "fine", "description": "x"}, "Hi\n")
    for name, text in TOO_DEEP_TO_COMPILE.items():
        write(root, name, text)
    async with connect(make_server(root, watch=False)) as client:
        for name in TOO_DEEP_TO_COMPILE:
            with pytest.raises(MCPError) as caught:
                await client.get_prompt(name.removesuffix(".md"))
            assert caught.value.error.code == INTERNAL_ERROR  # a reference id; the log has the cause
        fine = await client.get_prompt("fine")
    assert getattr(fine.messages[0].content, "text", "") == "Hi"


async def test_a_prompt_file_named_in_bytes_that_are_not_utf8_is_not_served(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    import os  # noqa: PLC0415

    root = tmp_path / "lib"
    write_prompt(root, "fine.md", {"name": "fine", "description": "x"}, "Hi\n")
    raw_root = os.fsencode(root)
    os.mkdir(os.path.join(raw_root, b"dir\xfe"))
    for raw in (b"bad\xff.md", b"dir\xfe/inner.md"):
        fd = os.open(os.path.join(raw_root, raw), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"---\ndescription: named after its file\n---\nHello\n")
        os.close(fd)
    library = Library(root)
    library.load_all()
    library.reload(["bad\udcff.md"])  # as the watcher hands a changed path over
    async with connect(make_server(root, watch=False)) as client:
        listed = await client.list_prompts()
    # A name with lone surrogates cannot be put in any JSON answer: prompts/list would fail for all.
    assert [prompt.name for prompt in listed.prompts] == ["fine"]
    assert [spec.name for spec in library.prompts()] == ["fine"]
