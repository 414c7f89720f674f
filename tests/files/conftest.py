"""Fixtures for bulkhead-files behaviour tests: a real tree in tmp_path and a server over it."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead.app import BulkheadServer
from bulkhead_files.sandbox import Sandbox
from bulkhead_files.server import build_server
from bulkhead_files.settings import FilesSettings

SECRET = "TOP-SECRET-OUTSIDE"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002"
    "000105fe02fea70000000049454e44ae426082"
)


def make_settings(root: Path | None = None, **overrides: Any) -> FilesSettings:
    values: dict[str, Any] = {"audit": "off", **overrides}
    if root is not None:
        values["roots"] = [str(root)]
    return FilesSettings.model_validate(values)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small project under tmp_path/root, with secrets beside and inside it."""
    base = tmp_path / "root"
    (base / "docs").mkdir(parents=True)
    (base / "src" / "pkg").mkdir(parents=True)
    (base / "docs" / "guide.md").write_text("# Guide\n\nInstall with pip.\nThen run it.\n")
    (base / "docs" / "notes.txt").write_text("caf\u00e9 au lait\n")
    (base / "src" / "pkg" / "main.py").write_text("def main():\n    print('hello')\n")
    (base / "src" / "pkg" / "util.py").write_text("TOKEN_NAME = 'x'\n")
    (base / "data.csv").write_text("id,name\n1,Ada\n2,Grace\n")
    (base / "logo.png").write_bytes(PNG)
    (base / ".env").write_text("PASSWORD=hunter2\n")
    (base / ".git").mkdir()
    (base / ".git" / "config").write_text("[core]\n")
    (base / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    return base.resolve()


@pytest.fixture
def sandbox(root: Path) -> Iterator[Sandbox]:
    box = Sandbox.from_settings(make_settings(root))
    yield box
    box.close()


@pytest.fixture
def server(root: Path, sandbox: Sandbox) -> BulkheadServer:
    return build_server(make_settings(root), sandbox)
