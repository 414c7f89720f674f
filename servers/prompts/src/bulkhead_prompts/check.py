"""`bulkhead-prompts check DIR`: validate a library the way the server loads it, for a team's CI.

One `path:line: reason` line per problem on stdout; exit 1 if there is any, 0 for a clean library,
2 for a usage error (no such directory, bad option).
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bulkhead_prompts.library import Library

__all__ = ["check_library", "main"]


def check_library(root: Path, *, max_file_bytes: int = 256 * 1024) -> tuple[int, list[str]]:
    """(prompts that load, one line per problem) for the library at `root`."""
    library = Library(root, max_file_bytes=max_file_bytes)
    library.load_all()
    return len(library), [str(problem) for problem in library.problems]


def main(argv: Sequence[str]) -> int:
    """Run the check; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="bulkhead-prompts check",
        description="Validate a prompt library: front matter, templates, arguments, names, sizes.",
    )
    parser.add_argument("directory", type=Path, help="the library directory")
    parser.add_argument(
        "--max-file-bytes", type=int, default=256 * 1024, help="largest prompt or embedded file (bytes)"
    )
    try:
        options = parser.parse_args(list(argv))
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    directory: Path = options.directory
    if not directory.is_dir():
        sys.stderr.write(f"bulkhead-prompts check: {directory} is not a directory\n")
        return 2
    loaded, problems = check_library(directory, max_file_bytes=options.max_file_bytes)
    for line in problems:
        sys.stdout.write(line + "\n")
    if problems:
        sys.stderr.write(f"{len(problems)} problem(s); {loaded} prompt(s) load\n")
        return 1
    sys.stderr.write(f"{loaded} prompt(s), no problems\n")
    return 0
