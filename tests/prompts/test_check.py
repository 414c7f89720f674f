"""`bulkhead-prompts check DIR`: one `path:line: reason` per problem, and its exit status."""

import subprocess
import sys
from pathlib import Path

import pytest

from bulkhead.testing import server_environment
from bulkhead_prompts.check import check_library
from bulkhead_prompts.settings import STARTER_LIBRARY
from tests.prompts.conftest import GREETING, GREETING_BODY, prompt_text, write, write_prompt

ARG_A = "---\ndescription: y\narguments:\n  - name: a\n"

CONFORMANCE_LIBRARY = Path(__file__).resolve().parent.parent / "conformance" / "library"


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bulkhead_prompts", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=server_environment(),
    )


@pytest.mark.parametrize("library", [STARTER_LIBRARY, CONFORMANCE_LIBRARY], ids=["starter", "conformance"])
def test_the_shipped_libraries_pass_check(library: Path) -> None:
    done = run_check(str(library))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert "no problems" in done.stderr


def test_the_starter_library_has_at_least_twelve_prompts() -> None:
    loaded, problems = check_library(STARTER_LIBRARY)
    assert problems == []
    assert loaded >= 12


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no front matter\n", "bad.md:1: a prompt file starts with a '---' line"),
        ("---\nname: x\ndescription: y\n", "bad.md:1: the front matter is never closed"),
        ("---\nname: x\ndescription: [unclosed\n---\nHi\n", "bad.md:3: front matter is not valid YAML"),
        ("---\n- a list\n---\nHi\n", "bad.md:2: front matter must be a mapping"),
        ("---\nname: x\n---\nHi\n", "bad.md:2: description: is required"),
        ("---\nname: x\ndescription: y\ncolour: red\n---\nHi\n", "bad.md:4: colour: is not a known key"),
        ("---\nname: bad name!\ndescription: y\n---\nHi\n", "bad.md:2: name: String should match pattern"),
        (
            ARG_A + "    required: true\n    default: z\n---\n{{ a }}\n",
            "bad.md:4: arguments.0: a required argument cannot have a default",
        ),
        (
            ARG_A + "    allowed: [p, q]\n    default: z\n---\n{{ a }}\n",
            "bad.md:4: arguments.0: default 'z' is not one of the allowed values",
        ),
        (
            ARG_A + "    allowed: [p]\n    suggestions: [q]\n---\n{{ a }}\n",
            "bad.md:4: arguments.0: give either allowed",
        ),
        (
            "---\ndescription: y\narguments:\n  - name: a\n  - name: a\n---\n{{ a }}\n",
            "bad.md:2: front matter: argument 'a' is declared twice",
        ),
        (
            "---\ndescription: y\narguments:\n  - name: loop\n---\n{{ loop }}\n",
            "bad.md:4: arguments.0: 'loop' is a reserved template name",
        ),
        (
            "---\ndescription: y\narguments:\n  - name: 2x\n---\nHi\n",
            "bad.md:4: arguments.0.name: String should match pattern",
        ),
        ("---\ndescription: y\n---\nline\n{% if %}\n", "bad.md:5: template syntax:"),
        ("---\ndescription: y\n---\nline\n\nHello {{ who }}\n", "bad.md:6: the template uses 'who'"),
        (
            "---\ndescription: y\narguments:\n  - name: a\n---\nNothing used.\n",
            "bad.md:4: argument 'a' is declared but the template never uses it",
        ),
        ("---\ndescription: y\n---\n{% include 'other.md' %}\n", "bad.md:4: templates cannot include"),
        ("---\ndescription: y\n---\n<!-- role: system -->\nHi\n", "bad.md:4: role 'system' is not user"),
        ("---\ndescription: y\n---\nHi <!-- role: user -->\n", "bad.md:4: a marker must be a whole line"),
        (
            "---\ndescription: y\n---\n<!-- embed: missing.txt -->\n",
            "bad.md:4: embed 'missing.txt': does not",
        ),
        (
            "---\ndescription: y\n---\n<!-- image: _a/notes.txt -->\n",
            "bad.md:4: image '_a/notes.txt': must be",
        ),
        ("---\ndescription: y\n---\n\n\n", "bad.md:4: the prompt has no message text"),
        (
            "---\ndescription: y\nx: &a [1]\ny: *a\n---\nHi\n",
            "bad.md:2: front matter must not use YAML anchors",
        ),
    ],
)
def test_each_kind_of_problem_is_reported_with_its_line(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path, "_a/notes.txt", "notes\n")
    write(tmp_path, "bad.md", text)
    loaded, problems = check_library(tmp_path)
    assert loaded == 0
    assert any(problem.startswith(expected) for problem in problems), problems


def test_invalid_utf8_and_oversized_files_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "latin.md", b"---\ndescription: caf\xe9\n---\nHi\n")
    size = write(tmp_path, "huge.md", prompt_text({"description": "big"}, "x" * 5000)).stat().st_size
    _, problems = check_library(tmp_path, max_file_bytes=4096)
    assert f"huge.md:1: cannot be loaded: it is {size} bytes, over the limit of 4096" in problems
    assert "latin.md:2: is not UTF-8 text" in problems


def test_duplicate_names_keep_the_first_path_and_report_the_second(tmp_path: Path) -> None:
    write_prompt(tmp_path, "a/greet.md", GREETING, GREETING_BODY)
    write_prompt(tmp_path, "b/greet.md", GREETING, GREETING_BODY)
    loaded, problems = check_library(tmp_path)
    assert loaded == 1
    assert problems == ["b/greet.md:1: duplicate prompt name 'greet': a/greet.md already defines it"]


def test_check_exits_1_with_one_line_per_problem_and_the_good_files_still_count(tmp_path: Path) -> None:
    write_prompt(tmp_path, "greet.md", GREETING, GREETING_BODY)
    write(tmp_path, "one.md", "---\ndescription: y\n---\n{{ nope }}\n")
    write(tmp_path, "two.md", "---\ncolour: red\ndescription: y\n---\nHi\n")
    done = run_check(str(tmp_path))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "one.md:4: the template uses 'nope', which is not a declared argument",
        "two.md:2: colour: is not a known key (name, title, description, arguments, tags, version)",
    ]
    assert "2 problem(s); 1 prompt(s) load" in done.stderr


@pytest.mark.parametrize("args", [[], ["/no/such/directory"], ["--bogus", "."], ["a", "b"]])
def test_check_usage_errors_exit_2(args: list[str]) -> None:
    done = run_check(*args)
    assert done.returncode == 2
    assert done.stdout == ""


def test_files_that_are_not_prompts_are_not_checked(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "# Our prompts\n")
    write(tmp_path, "_shared/snippet.md", "a snippet\n")
    write(tmp_path, ".git/HEAD.md", "x\n")
    write(tmp_path, "notes.txt", "x\n")
    assert check_library(tmp_path) == (0, [])
