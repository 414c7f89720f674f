"""bulkhead-files settings: roots as positional arguments or env var, checked at start."""

import subprocess
import sys
from pathlib import Path

import pytest

from bulkhead.settings import load_settings
from bulkhead.testing import server_environment
from bulkhead_files.settings import DEFAULT_DENY, FilesSettings, sample_tree


def test_roots_are_positional_arguments_resolved_to_real_paths(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "b")
    settings = load_settings(FilesSettings, [str(tmp_path / "a"), str(tmp_path / "link"), "--port", "0"])
    assert settings.roots == [str((tmp_path / "a").resolve()), str((tmp_path / "b").resolve())]


def test_roots_come_from_the_environment_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULKHEAD_FILES_ROOTS", f"{tmp_path},{tmp_path}")
    settings = load_settings(FilesSettings, [])
    assert settings.roots == [str(tmp_path.resolve())]


def test_defaults_are_the_sample_tree_port_8102_and_the_secret_deny_list() -> None:
    settings = load_settings(FilesSettings, [])
    assert settings.roots == []
    assert settings.port == 8102
    assert settings.deny == DEFAULT_DENY
    assert {".git", ".env", ".env.*", "id_rsa*", "*.pem", ".ssh", ".aws"} <= set(settings.deny)
    assert settings.show_hidden is False
    assert (sample_tree() / "README.md").is_file()


def _start(root: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "bulkhead_files", str(root)],
        env=server_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "roots" in lines[0]
    return lines


def test_a_missing_root_stops_the_start_with_one_line(tmp_path: Path) -> None:
    assert "does not exist" in _start(tmp_path / "missing")[0]


def test_a_file_as_root_stops_the_start_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    assert "is not a directory" in _start(tmp_path / "file.txt")[0]
