"""PromptsSettings: env prefix, defaults, and one clear line for a bad library setting."""

from pathlib import Path

import pytest

from bulkhead.settings import load_settings
from bulkhead_prompts.settings import STARTER_LIBRARY, PromptsSettings


def test_defaults_serve_the_starter_library_on_port_8105_unwatched() -> None:
    settings = load_settings(PromptsSettings, [])
    assert settings.port == 8105
    assert settings.library_root == STARTER_LIBRARY
    assert not settings.watching
    assert not settings.tools


def test_env_vars_use_the_bulkhead_prompts_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULKHEAD_PROMPTS_LIBRARY", str(tmp_path))
    monkeypatch.setenv("BULKHEAD_PROMPTS_TOOLS", "true")
    monkeypatch.setenv("BULKHEAD_PROMPTS_WATCH_POLLING", "1")
    settings = load_settings(PromptsSettings, ["--page-size", "7"])
    assert settings.library_root == tmp_path
    assert settings.tools
    assert settings.watch_polling
    assert settings.watching
    assert settings.page_size == 7


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            ["--library", "/no/such/dir"],
            "library (--library / BULKHEAD_PROMPTS_LIBRARY): /no/such/dir is not",
        ),
        (["--page-size", "0"], "page_size (--page-size / BULKHEAD_PROMPTS_PAGE_SIZE)"),
        (["--max-file-bytes", "10"], "max_file_bytes"),
    ],
)
def test_bad_settings_stop_with_one_line_naming_the_setting(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        load_settings(PromptsSettings, argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert fragment in err[0]
