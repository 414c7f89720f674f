"""prompts/get validation, prompts/list pagination, completion and the optional tools."""

import json
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, PromptReference, ResourceTemplateReference

from bulkhead.testing import MODERN_ERA, connect
from tests.prompts.conftest import ServerFactory, write_prompt

pytestmark = pytest.mark.anyio

ERAS = ["legacy", MODERN_ERA]


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(
    ("name", "arguments", "argument", "message"),
    [
        ("greet", {}, "who", "Prompt 'greet' needs the argument 'who'."),
        ("greet", {"who": "Ada", "mood": "x"}, "mood", "Prompt 'greet' has no argument 'mood'"),
        ("greet", {"who": "Ada", "tone": "angry"}, "tone", "must be one of: warm, formal, Wry"),
        ("greet", {"who": "Ada", "tone": "WARM"}, "tone", "must be one of"),
        ("greet", {"who": "x" * 2000}, "who", "the limit is 1000"),
    ],
)
async def test_every_argument_error_is_invalid_params_naming_the_argument(
    library_root: Path,
    make_server: ServerFactory,
    era: str,
    name: str,
    arguments: dict[str, str],
    argument: str,
    message: str,
) -> None:
    async with connect(make_server(library_root, max_argument_chars=1000), era) as client:
        with pytest.raises(MCPError) as caught:
            await client.get_prompt(name, arguments)
    assert caught.value.error.code == INVALID_PARAMS
    assert message in caught.value.error.message
    assert caught.value.error.data == {"argument": argument}


@pytest.mark.parametrize("era", ERAS)
async def test_an_unknown_prompt_is_invalid_params(
    library_root: Path, make_server: ServerFactory, era: str
) -> None:
    async with connect(make_server(library_root), era) as client:
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("no_such_prompt", {})
    assert caught.value.error.code == INVALID_PARAMS
    assert "Unknown prompt: 'no_such_prompt'" in caught.value.error.message


async def test_gets_are_audited_ok_rejected_and_error_with_a_reference(
    library_root: Path, make_server: ServerFactory, tmp_path: Path
) -> None:
    write_prompt(
        library_root,
        "broken.md",
        {"name": "broken", "description": "Embeds a file that will vanish."},
        "<!-- embed: _shared/gone.md -->\n",
    )
    (library_root / "_shared" / "gone.md").write_text("soon gone\n")
    server = make_server(library_root, audit=str(tmp_path / "audit.jsonl"))
    (library_root / "_shared" / "gone.md").unlink()
    async with connect(server) as client:
        await client.get_prompt("greet", {"who": "Ada"})
        with pytest.raises(MCPError):
            await client.get_prompt("greet", {})
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("broken", {})
    assert caught.value.error.code == INTERNAL_ERROR
    assert "reference" in caught.value.error.message
    assert str(library_root) not in caught.value.error.message
    server.audit.close()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["operation"], r["target"], r["outcome"]) for r in records] == [
        ("prompts/get", "greet", "ok"),
        ("prompts/get", "greet", "rejected"),
        ("prompts/get", "broken", "error"),
    ]


@pytest.mark.parametrize("era", ERAS)
async def test_prompts_list_pages_with_opaque_cursors(
    tmp_path: Path, make_server: ServerFactory, era: str
) -> None:
    root = tmp_path / "many"
    for index in range(7):
        write_prompt(root, f"p{index}.md", {"name": f"p{index}", "description": f"Prompt {index}."}, "Hi.\n")
    async with connect(make_server(root, page_size=3), era) as client:
        names: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await client.list_prompts(cursor=cursor)
            names += [prompt.name for prompt in page.prompts]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
    assert names == [f"p{index}" for index in range(7)]
    assert pages == 3


@pytest.mark.parametrize("cursor", ["garbage", "eyJvIjozLCJzIjoiMDAifQ.AAAA", "é"])
async def test_a_forged_or_edited_cursor_is_invalid_params(
    library_root: Path, make_server: ServerFactory, cursor: str
) -> None:
    async with connect(make_server(library_root, page_size=1)) as client:
        real = (await client.list_prompts()).next_cursor
        assert real is not None
        with pytest.raises(MCPError) as caught:
            await client.list_prompts(cursor=cursor)
        assert caught.value.error.code == INVALID_PARAMS
        payload, _, signature = real.partition(".")
        with pytest.raises(MCPError):
            await client.list_prompts(
                cursor=payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature
            )


@pytest.mark.parametrize("era", ERAS)
async def test_completion_matches_a_prefix_ignoring_case(
    library_root: Path, make_server: ServerFactory, era: str
) -> None:
    ref = PromptReference(type="ref/prompt", name="greet")
    async with connect(make_server(library_root), era) as client:
        closed = await client.complete(ref, {"name": "tone", "value": "w"})
        open_ = await client.complete(ref, {"name": "lang", "value": "E"})
        everything = await client.complete(ref, {"name": "lang", "value": ""})
        free = await client.complete(ref, {"name": "who", "value": "A"})
    assert closed.completion.values == ["warm", "Wry"]
    assert open_.completion.values == ["English", "Español", "Eesti"]
    assert open_.completion.has_more is False
    assert everything.completion.total == 4
    assert free.completion.values == []


async def test_completion_caps_values_at_100_and_says_there_are_more(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    root = tmp_path / "big"
    write_prompt(
        root,
        "pick.md",
        {
            "name": "pick",
            "description": "Pick a table.",
            "arguments": [{"name": "table", "suggestions": [f"table_{n:03}" for n in range(250)]}],
        },
        "Use {{ table }}.\n",
    )
    async with connect(make_server(root)) as client:
        result = await client.complete(
            PromptReference(type="ref/prompt", name="pick"), {"name": "table", "value": "TABLE_"}
        )
    assert len(result.completion.values) == 100
    assert result.completion.total == 250
    assert result.completion.has_more is True
    assert result.completion.values[0] == "table_000"


async def test_completion_of_an_unknown_prompt_or_argument_is_invalid_params(
    library_root: Path, make_server: ServerFactory
) -> None:
    async with connect(make_server(library_root)) as client:
        for ref, argument in [
            (PromptReference(type="ref/prompt", name="nope"), "who"),
            (PromptReference(type="ref/prompt", name="greet"), "nope"),
        ]:
            with pytest.raises(MCPError) as caught:
                await client.complete(ref, {"name": argument, "value": ""})
            assert caught.value.error.code == INVALID_PARAMS
        template = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="x://{y}"), {"name": "y", "value": ""}
        )
    assert template.completion.values == []


async def test_tools_are_offered_only_when_enabled(library_root: Path, make_server: ServerFactory) -> None:
    async with connect(make_server(library_root)) as client:
        assert (await client.list_tools()).tools == []
    async with connect(make_server(library_root, tools=True)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"list_prompts", "get_prompt"}
    assert tools["get_prompt"].annotations is not None
    assert tools["get_prompt"].annotations.read_only_hint


@pytest.mark.parametrize("era", ERAS)
async def test_the_tools_list_and_render_prompts_for_tool_only_clients(
    library_root: Path, make_server: ServerFactory, era: str
) -> None:
    async with connect(make_server(library_root, tools=True), era) as client:
        listed = await client.call_tool("list_prompts", {})
        tagged = await client.call_tool("list_prompts", {"tag": "demo"})
        got = await client.call_tool("get_prompt", {"name": "review", "arguments": {"diff": "+1"}})
    assert listed.structured_content is not None
    assert [p["name"] for p in listed.structured_content["prompts"]] == ["greet", "review"]
    assert tagged.structured_content is not None
    assert [p["name"] for p in tagged.structured_content["prompts"]] == ["greet"]
    greet = listed.structured_content["prompts"][0]
    assert greet["arguments"][1] == {
        "name": "tone",
        "description": None,
        "required": False,
        "default": "warm",
        "allowed": ["warm", "formal", "Wry"],
    }
    assert got.structured_content is not None
    messages = got.structured_content["messages"]
    assert [m["role"] for m in messages] == ["user", "user", "assistant", "user"]
    assert messages[1]["resource_uri"] == "prompts://library/_shared/checklist.md"
    assert messages[3]["text"] == "+1"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "nope"}, "Unknown prompt: 'nope'"),
        ({"name": "greet", "arguments": {}}, "needs the argument 'who'"),
        ({"name": "greet", "arguments": {"who": "A", "tone": "x"}}, "must be one of"),
        ({"name": "greet", "arguments": {"who": "A", "bogus": "x"}}, "has no argument 'bogus'"),
    ],
)
async def test_tool_errors_reach_the_model_naming_the_problem(
    library_root: Path, make_server: ServerFactory, arguments: dict[str, object], message: str
) -> None:
    async with connect(make_server(library_root, tools=True)) as client:
        result = await client.call_tool("get_prompt", arguments)
    assert result.is_error
    assert message in "".join(getattr(block, "text", "") for block in result.content)
