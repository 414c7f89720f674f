"""prompts/get renders single and multi-message prompts, defaults and embedded files."""

import base64
from pathlib import Path

import pytest
from mcp_types import EmbeddedResource, ImageContent, PromptMessage, TextContent, TextResourceContents

from bulkhead.testing import MODERN_ERA, connect
from tests.prompts.conftest import ServerFactory, write, write_prompt

pytestmark = pytest.mark.anyio

ERAS = ["legacy", MODERN_ERA]


def texts(messages: list[PromptMessage]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for message in messages:
        content = message.content
        role = message.role
        if isinstance(content, TextContent):
            out.append((role, content.text))
        elif isinstance(content, EmbeddedResource):
            out.append((role, f"[embed {content.resource.uri}]"))
        elif isinstance(content, ImageContent):
            out.append((role, f"[image {content.mime_type}]"))
    return out


@pytest.mark.parametrize("era", ERAS)
async def test_a_single_message_prompt_renders_with_its_defaults(
    library_root: Path, make_server: ServerFactory, era: str
) -> None:
    async with connect(make_server(library_root), era) as client:
        result = await client.get_prompt("greet", {"who": "Ada"})
    assert result.description == "Says hello."
    assert texts(result.messages) == [("user", "Hello Ada, in a warm tone.")]


async def test_given_values_replace_defaults_and_optional_blocks_appear(
    library_root: Path, make_server: ServerFactory
) -> None:
    async with connect(make_server(library_root)) as client:
        result = await client.get_prompt("greet", {"who": "Ada", "tone": "formal", "lang": "Eesti"})
    assert texts(result.messages) == [("user", "Hello Ada, in a formal tone. Answer in Eesti.")]


async def test_a_suggestion_list_does_not_restrict_the_value(
    library_root: Path, make_server: ServerFactory
) -> None:
    async with connect(make_server(library_root)) as client:
        result = await client.get_prompt("greet", {"who": "Ada", "lang": "Klingon"})
    assert texts(result.messages) == [("user", "Hello Ada, in a warm tone. Answer in Klingon.")]


@pytest.mark.parametrize("era", ERAS)
async def test_role_markers_split_messages_and_embeds_become_embedded_resources(
    library_root: Path, make_server: ServerFactory, era: str
) -> None:
    async with connect(make_server(library_root), era) as client:
        result = await client.get_prompt("review", {"diff": "+ x = 1"})
    assert texts(result.messages) == [
        ("user", "Review carefully."),
        ("user", "[embed prompts://library/_shared/checklist.md]"),
        ("assistant", "Send the diff."),
        ("user", "+ x = 1"),
    ]
    embedded = result.messages[1].content
    assert isinstance(embedded, EmbeddedResource)
    assert isinstance(embedded.resource, TextResourceContents)
    assert embedded.resource.text == "- check the tests\n"
    assert embedded.resource.mime_type == "text/markdown"


async def test_an_embedded_file_is_read_at_each_get_so_edits_show_at_once(
    library_root: Path, make_server: ServerFactory
) -> None:
    server = make_server(library_root, watch=False)
    async with connect(server) as client:
        write(library_root, "_shared/checklist.md", "- check the docs\n")
        result = await client.get_prompt("review", {"diff": "d"})
    embedded = result.messages[1].content
    assert isinstance(embedded, EmbeddedResource)
    assert getattr(embedded.resource, "text", None) == "- check the docs\n"


async def test_binary_embeds_are_blobs_and_images_are_image_content(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    root = tmp_path / "lib"
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
    )
    write(root, "_img/dot.png", png)
    write(root, "_bin/data.bin", b"\x00\xff\xfe")
    write_prompt(
        root,
        "pic.md",
        {"name": "pic", "description": "An image and a blob."},
        "<!-- image: _img/dot.png -->\nLook at it.\n<!-- embed: _bin/data.bin -->\n",
    )
    async with connect(make_server(root)) as client:
        result = await client.get_prompt("pic")
    image = result.messages[0].content
    assert isinstance(image, ImageContent)
    assert image.mime_type == "image/png"
    assert base64.b64decode(image.data) == png
    blob = result.messages[2].content
    assert isinstance(blob, EmbeddedResource)
    assert base64.b64decode(getattr(blob.resource, "blob", "")) == b"\x00\xff\xfe"


async def test_prompts_list_shows_names_titles_descriptions_and_arguments(
    library_root: Path, make_server: ServerFactory
) -> None:
    async with connect(make_server(library_root)) as client:
        listed = await client.list_prompts()
    assert [prompt.name for prompt in listed.prompts] == ["greet", "review"]
    greet = listed.prompts[0]
    assert greet.title == "Greet someone"
    assert greet.description == "Says hello."
    assert [(a.name, a.required) for a in greet.arguments or []] == [
        ("who", True),
        ("tone", False),
        ("lang", False),
    ]


async def test_the_starter_library_serves_every_prompt_with_example_arguments(
    make_server: ServerFactory,
) -> None:
    from bulkhead_prompts.settings import STARTER_LIBRARY  # noqa: PLC0415

    server = make_server(STARTER_LIBRARY)
    assert len(server.library) >= 12
    assert server.library.problems == []
    async with connect(server) as client:
        listed = await client.list_prompts()
        for prompt in listed.prompts:
            arguments = {a.name: f"example {a.name}" for a in prompt.arguments or [] if a.required}
            result = await client.get_prompt(prompt.name, arguments)
            assert result.messages, prompt.name
            assert any(isinstance(m.content, TextContent) for m in result.messages)
