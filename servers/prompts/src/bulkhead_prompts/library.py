"""The in-memory prompt library: every loaded prompt by name, reloaded file by file.

A file that fails to load is reported (file, line, reason) and skipped; if an earlier version of
it loaded, that last good version keeps serving until the file is fixed or removed. Two files that
declare the same name: the one whose path sorts first is served, the other is reported.
"""

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread

from bulkhead_prompts.files import LibraryPathError, is_prompt_file, read_confined, scan
from bulkhead_prompts.loader import parse_prompt
from bulkhead_prompts.models import Embed, Problem, PromptSpec, RenderedMessage
from bulkhead_prompts.render import render, validate_arguments

__all__ = ["COMPLETION_LIMIT", "Completions", "Library", "UnknownPromptError"]

COMPLETION_LIMIT = 100
"""The most values one completion answer carries (the spec's cap)."""


class UnknownPromptError(LookupError):
    """No prompt of that name (or no such argument of it, for completion)."""


@dataclass(frozen=True)
class Completions:
    """Completion values for an argument, with the count of all matches."""

    values: list[str]
    total: int

    @property
    def has_more(self) -> bool:
        """Whether matches were left out."""
        return self.total > len(self.values)


@dataclass
class _FileState:
    digest: str = ""
    good: PromptSpec | None = None
    """The last version of the file that loaded; it serves while a newer version is broken."""
    problems: list[Problem] = field(default_factory=list[Problem])


def _has_embeds(spec: PromptSpec) -> bool:
    return any(isinstance(part, Embed) for message in spec.messages for part in message.parts)


class Library:
    """A directory of prompt files, loaded into memory and kept current by `reload`."""

    def __init__(self, root: Path, *, max_file_bytes: int = 256 * 1024, max_prompts: int = 10_000) -> None:
        self.root = Path(os.path.realpath(root))
        self.max_file_bytes = max_file_bytes
        self.max_prompts = max_prompts
        self._files: dict[str, _FileState] = {}
        self._by_name: dict[str, PromptSpec] = {}
        self._sorted: list[PromptSpec] = []
        self._duplicates: list[Problem] = []
        self._limit_problems: list[Problem] = []

    def load_all(self) -> bool:
        """Scan the whole directory; True if what is served changed."""
        found = scan(self.root) if self.root.is_dir() else []
        self._limit_problems = []
        if len(found) > self.max_prompts:
            self._limit_problems.append(
                Problem(
                    found[self.max_prompts],
                    1,
                    f"the library holds more than {self.max_prompts} prompt files; the rest are not loaded",
                )
            )
            found = found[: self.max_prompts]
        present = set(found)
        gone = [path for path in self._files if path not in present]
        return self.reload([*found, *gone])

    def reload(self, paths: Iterable[str]) -> bool:
        """Load (or forget) each of `paths`, relative to the root; True if what is served changed."""
        for path in paths:
            self._load_file(path)
        return self._rebuild()

    def _load_file(self, path: str) -> None:
        if not is_prompt_file(path):
            return
        if not os.path.lexists(self.root / path):
            self._files.pop(path, None)
            return
        state = self._files.setdefault(path, _FileState())
        try:
            data = read_confined(self.root, path, self.max_file_bytes)
        except LibraryPathError as exc:
            state.digest, state.problems = "", [Problem(path, 1, f"cannot be loaded: it {exc}")]
            return
        digest = hashlib.sha256(data).hexdigest()
        if digest == state.digest:
            return
        state.digest = digest
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            state.problems = [Problem(path, data[: exc.start].count(b"\n") + 1, "is not UTF-8 text")]
            return
        source = source.removeprefix("\ufeff").replace("\r\n", "\n")
        try:
            spec, problems = parse_prompt(self.root, path, source, max_bytes=self.max_file_bytes)
        except Exception as exc:  # one file that breaks the parser must not stop the library
            spec, problems = None, [Problem(path, 1, f"cannot be parsed: {type(exc).__name__}")]
        state.problems = problems
        if spec is not None:
            state.good = spec

    def _rebuild(self) -> bool:
        by_name: dict[str, PromptSpec] = {}
        duplicates: list[Problem] = []
        for path in sorted(self._files):
            spec = self._files[path].good
            if spec is None:
                continue
            first = by_name.get(spec.name)
            if first is not None:
                duplicates.append(
                    Problem(path, 1, f"duplicate prompt name {spec.name!r}: {first.path} already defines it")
                )
                continue
            by_name[spec.name] = spec
        changed = by_name.keys() != self._by_name.keys() or any(
            by_name[name] is not self._by_name[name] for name in by_name
        )
        self._by_name = by_name
        self._sorted = [by_name[name] for name in sorted(by_name)]
        self._duplicates = duplicates
        return changed

    @property
    def problems(self) -> list[Problem]:
        """Every problem of the files as they are on disk now, by path and line."""
        found = [problem for state in self._files.values() for problem in state.problems]
        found += self._duplicates + self._limit_problems
        return sorted(found, key=lambda problem: (problem.path, problem.line, problem.reason))

    def stale(self) -> list[str]:
        """Files served from their last good version because the current one is broken."""
        return sorted(
            path for path, state in self._files.items() if state.problems and state.good is not None
        )

    def __len__(self) -> int:
        return len(self._sorted)

    def prompts(self) -> list[PromptSpec]:
        """Every served prompt, sorted by name."""
        return list(self._sorted)

    def get(self, name: str) -> PromptSpec:
        """The prompt called `name`, or `UnknownPromptError`."""
        spec = self._by_name.get(name)
        if spec is None:
            raise UnknownPromptError(f"Unknown prompt: {name[:100]!r}. List the prompts to see their names.")
        return spec

    async def render(
        self, name: str, arguments: Mapping[str, str] | None, *, max_argument_chars: int
    ) -> tuple[PromptSpec, list[RenderedMessage]]:
        """Validate `arguments` and render prompt `name` (files are read off the event loop)."""
        spec = self.get(name)
        context = validate_arguments(spec, arguments, max_chars=max_argument_chars)
        if _has_embeds(spec):
            messages = await anyio.to_thread.run_sync(
                lambda: render(spec, context, self.root, max_bytes=self.max_file_bytes)
            )
        else:
            messages = render(spec, context, self.root, max_bytes=self.max_file_bytes)
        return spec, messages

    def complete(self, name: str, argument: str, typed: str) -> Completions:
        """Allowed values or suggestions of an argument that start with `typed`, ignoring case."""
        spec = self.get(name)
        declared = spec.argument(argument)
        if declared is None:
            raise UnknownPromptError(f"Prompt {name[:100]!r} has no argument {argument[:60]!r}.")
        prefix = typed.casefold()
        matches = [value for value in declared.choices if value.casefold().startswith(prefix)]
        return Completions(values=matches[:COMPLETION_LIMIT], total=len(matches))
