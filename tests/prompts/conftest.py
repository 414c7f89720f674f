"""Fixtures for bulkhead-prompts: libraries written to real files, and servers over them."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bulkhead.notify import ChangeNotifier
from bulkhead_prompts.library import Library
from bulkhead_prompts.server import PromptsServer, build_server
from bulkhead_prompts.settings import PromptsSettings


def prompt_text(front: dict[str, Any], body: str) -> str:
    """A prompt file: `front` as YAML front matter, then `body`."""
    dumped: str = yaml.safe_dump(front, sort_keys=False)  # pyright: ignore[reportUnknownMemberType] -- stub overloads
    return "---\n" + dumped + "---\n" + body


def write(root: Path, relative: str, text: str | bytes) -> Path:
    """Write a library file (creating directories) and return its path."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_prompt(root: Path, relative: str, front: dict[str, Any], body: str) -> Path:
    """Write a prompt file made of `front` and `body`."""
    return write(root, relative, prompt_text(front, body))


GREETING = {
    "name": "greet",
    "title": "Greet someone",
    "description": "Says hello.",
    "tags": ["demo"],
    "arguments": [
        {"name": "who", "description": "Who to greet", "required": True},
        {"name": "tone", "allowed": ["warm", "formal", "Wry"], "default": "warm"},
        {"name": "lang", "suggestions": ["English", "Español", "Eesti", "Deutsch"]},
    ],
}
GREETING_BODY = "Hello {{ who }}, in a {{ tone }} tone.{% if lang %} Answer in {{ lang }}.{% endif %}\n"


@pytest.fixture
def library_root(tmp_path: Path) -> Path:
    """A small library: a single-message prompt, a multi-message one with an embed, an image one."""
    root = tmp_path / "library"
    write_prompt(root, "greet.md", GREETING, GREETING_BODY)
    write(root, "_shared/checklist.md", "- check the tests\n")
    write_prompt(
        root,
        "code/review.md",
        {
            "name": "review",
            "description": "Review a diff.",
            "arguments": [{"name": "diff", "required": True}],
        },
        "Review carefully.\n<!-- embed: _shared/checklist.md -->\n<!-- role: assistant -->\n"
        "Send the diff.\n<!-- role: user -->\n{{ diff }}\n",
    )
    write(root, "README.md", "Not a prompt.\n")
    return root


ServerFactory = Callable[..., PromptsServer]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Build a server over a library directory, with settings overrides (audit file closed after)."""
    made: list[PromptsServer] = []

    def make(root: Path, notifier: ChangeNotifier | None = None, **overrides: Any) -> PromptsServer:
        overrides.setdefault("audit", str(tmp_path / "audit.jsonl"))
        settings = PromptsSettings(library=root, **overrides)
        library = Library(
            settings.library_root, max_file_bytes=settings.max_file_bytes, max_prompts=settings.max_prompts
        )
        library.load_all()
        server = build_server(settings, library, notifier)
        made.append(server)
        return server

    yield make
    for server in made:
        server.audit.close()
