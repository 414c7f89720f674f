"""Loading one prompt file: YAML front matter, a body of messages, and every problem with a line.

File format::

    ---
    name: review_diff
    description: Review a diff for bugs, risks and missing tests.

Arguments:
      - name: diff
        description: The unified diff
        required: true
      - name: focus
        allowed: [correctness, security, performance]
        default: correctness
    ---
    You are reviewing a change. Focus on {{ focus }}.
    <!-- embed: _shared/review-checklist.md -->
    <!-- role: assistant -->
    Understood. Send the diff.
    <!-- role: user -->
    {{ diff }}

Text before the first role marker belongs to a user message. Markers are structural: they are
read from the file before rendering, each on a line of its own, never from argument values.
"""

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import yaml
from jinja2 import TemplateSyntaxError, nodes
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from bulkhead_prompts.files import LibraryPathError, read_confined, resolve_confined
from bulkhead_prompts.models import ArgumentSpec, Embed, Message, Part, Problem, PromptSpec, Role, Segment
from bulkhead_prompts.render import ENVIRONMENT

__all__ = ["load_prompt", "parse_prompt"]

FENCE = "---"
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>role|embed|image)\s*:(?P<value>.*?)-->\s*$")
_MARKER_ANYWHERE = re.compile(r"<!--\s*(role|embed|image)\s*:")
_ROLES: tuple[Role, ...] = ("user", "assistant")
_RESERVED = frozenset({"true", "false", "none", "True", "False", "None", "loop", "self", "varargs", "kwargs"})
_PROMPT_KEYS = "name, title, description, arguments, tags, version"
_ARGUMENT_KEYS = "name, description, required, default, allowed, suggestions"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


def _scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_scalar_text)]


class _Argument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    description: str | None = None
    required: bool = False
    default: Text | None = None
    allowed: list[Text] | None = Field(default=None, min_length=1, max_length=1000)
    suggestions: list[Text] | None = Field(default=None, max_length=10000)

    @model_validator(mode="after")
    def _consistent(self) -> "_Argument":
        if self.name in _RESERVED:
            raise ValueError(f"{self.name!r} is a reserved template name; pick another argument name")
        if self.required and self.default is not None:
            raise ValueError("a required argument cannot have a default")
        if self.allowed is not None and self.suggestions is not None:
            raise ValueError("give either allowed (a closed set) or suggestions (an open one), not both")
        if self.allowed is not None and self.default is not None and self.default not in self.allowed:
            raise ValueError(f"default {self.default!r} is not one of the allowed values")
        return self


class _FrontMatter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    title: str | None = Field(default=None, max_length=200)
    description: str = Field(min_length=1, max_length=2000)
    arguments: list[_Argument] = Field(default_factory=list[_Argument], max_length=100)
    tags: list[Text] = Field(default_factory=list[str], max_length=50)
    version: Text | None = None

    @model_validator(mode="after")
    def _unique_arguments(self) -> "_FrontMatter":
        seen: set[str] = set()
        for argument in self.arguments:
            if argument.name in seen:
                raise ValueError(f"argument {argument.name!r} is declared twice")
            seen.add(argument.name)
        return self


def _node_lines(node: yaml.Node, offset: int) -> tuple[dict[tuple[str | int, ...], int], bool]:
    """File lines of every key and item in a composed YAML tree, and whether it uses aliases."""
    lines: dict[tuple[str | int, ...], int] = {}
    seen: set[int] = set()
    aliased = False

    def walk(current: yaml.Node, path: tuple[str | int, ...]) -> None:
        nonlocal aliased
        if id(current) in seen:
            aliased = True
            return
        seen.add(id(current))
        lines[path] = current.start_mark.line + offset
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:  # pyright: ignore[reportUnknownVariableType] -- PyYAML's node tree
                name = str(key.value)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
                walk(value, (*path, name))  # pyright: ignore[reportUnknownArgumentType]
                # An error about a key points at the key, not at where its value starts.
                lines[(*path, name)] = key.start_mark.line + offset  # pyright: ignore[reportUnknownMemberType]
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
                walk(item, (*path, index))  # pyright: ignore[reportUnknownArgumentType]

    walk(node, ())
    return lines, aliased


def _line_of(lines: dict[tuple[str | int, ...], int], location: Iterable[str | int], default: int) -> int:
    path = tuple(location)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return default


_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present


def _front_matter(
    path: str, text: str, first_line: int, problems: list[Problem]
) -> tuple[_FrontMatter | None, dict[tuple[str | int, ...], int]]:
    """The validated front matter (or None, with `problems` added) and the file line of each key."""
    offset = first_line  # YAML line 0 is file line `first_line` (1-based)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if not isinstance(node, yaml.MappingNode):
            problems.append(Problem(path, first_line, "front matter must be a mapping of keys to values"))
            return None, {}
        lines, aliased = _node_lines(node, offset)
        if aliased:
            problems.append(Problem(path, first_line, "front matter must not use YAML anchors or aliases"))
            return None, lines
        data = loader.construct_document(node)  # pyright: ignore[reportUnknownMemberType] -- untyped in the stubs
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if mark is not None and exc.context_mark is not None and mark.line >= text.count("\n"):
            # Found only at the end (an unclosed bracket or quote): where it opened is more useful.
            mark = exc.context_mark
        line = mark.line + offset if mark is not None else first_line
        problems.append(Problem(path, line, f"front matter is not valid YAML: {exc.problem or exc}"))
        return None, {}
    except yaml.YAMLError as exc:
        problems.append(Problem(path, first_line, f"front matter is not valid YAML: {exc}"))
        return None, {}
    finally:
        loader.dispose()
    try:
        return _FrontMatter.model_validate(data), lines
    except ValidationError as exc:
        for error in exc.errors():
            location = list(error["loc"])
            where = ".".join(str(part) for part in location) or "front matter"
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                known = _ARGUMENT_KEYS if location[:1] == ["arguments"] else _PROMPT_KEYS
                message = f"is not a known key ({known})"
            elif error["type"] == "missing":
                message = "is required"
            problems.append(Problem(path, _line_of(lines, location, first_line), f"{where}: {message}"))
        return None, lines


_FORBIDDEN = (nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)


def _walk(tree: nodes.Template) -> tuple[dict[str, int], list[int]]:
    """Names a template reads but never sets (with the line first read on), and lines that include.

    One walk of the parsed tree: `jinja2.meta.find_undeclared_variables` runs a code generator
    over it, which cost more than parsing itself.
    """
    stored: set[str] = set()
    loads: list[nodes.Name] = []
    includes: list[int] = []
    for node in tree.find_all((nodes.Name, nodes.Macro, *_FORBIDDEN)):
        if isinstance(node, nodes.Name):
            if node.ctx == "load":
                loads.append(node)
            else:
                stored.add(node.name)
        elif isinstance(node, nodes.Macro):
            stored.add(node.name)
        else:
            includes.append(node.lineno)
    read: dict[str, int] = {}
    for node in loads:
        if node.name not in stored and node.name not in ENVIRONMENT.globals:
            read.setdefault(node.name, node.lineno)
    return read, includes


def _marker(line: str) -> tuple[str, str] | None:
    match = _MARKER.match(line)
    if match is None:
        return None
    return match["kind"], match["value"].strip()


class _BodyParser:
    def __init__(self, root: Path, path: str, max_bytes: int, problems: list[Problem]) -> None:
        self.root = root
        self.path = path
        self.max_bytes = max_bytes
        self.problems = problems
        self.messages: list[Message] = []
        self.role: Role = "user"
        self.parts: list[Part] = []
        self.text: list[str] = []
        self.text_line = 0
        self.used: dict[str, int] = {}

    def flush_text(self) -> None:
        source = "\n".join(self.text)
        self.text = []
        if not source.strip():
            return
        try:
            tree = ENVIRONMENT.parse(source)
            read, includes = _walk(tree)
        except TemplateSyntaxError as exc:
            self.problems.append(
                Problem(self.path, self.text_line + (exc.lineno or 1) - 1, f"template syntax: {exc.message}")
            )
            return
        except RecursionError:
            # `{{ ((((...)))) }}` a few hundred deep exhausts the parser's stack: one file's problem.
            self.problems.append(Problem(self.path, self.text_line, "template syntax: nested too deeply"))
            return
        for line in includes:
            self.problems.append(
                Problem(
                    self.path,
                    self.text_line + line - 1,
                    "templates cannot include, extend or import other templates; "
                    "embed a library file with <!-- embed: path --> instead",
                )
            )
        for name, line in read.items():
            self.used.setdefault(name, self.text_line + line - 1)
        self.parts.append(Segment(source=source, line=self.text_line))

    def flush_message(self) -> None:
        self.flush_text()
        if self.parts:
            self.messages.append(Message(role=self.role, parts=tuple(self.parts)))
        self.parts = []

    def embed(self, kind: str, target: str, line: int) -> None:
        self.flush_text()
        try:
            real = resolve_confined(self.root, target)
            if not real.is_file():
                raise LibraryPathError("does not exist or is not a regular file")
            if real.stat().st_size > self.max_bytes:
                raise LibraryPathError(f"is over the limit of {self.max_bytes} bytes")
        except LibraryPathError as exc:
            self.problems.append(Problem(self.path, line, f"{kind} {target[:200]!r}: {exc}"))
            return
        if kind == "image" and not target.lower().endswith(_IMAGE_SUFFIXES):
            self.problems.append(
                Problem(self.path, line, f"image {target!r}: must be a .png, .jpg, .gif or .webp file")
            )
            return
        self.parts.append(Embed(path=target, kind="image" if kind == "image" else "embed", line=line))

    def feed(self, line_number: int, line: str) -> None:
        marker = _marker(line)
        if marker is None:
            if _MARKER_ANYWHERE.search(line):
                self.problems.append(
                    Problem(self.path, line_number, "a marker must be a whole line: <!-- role: user -->")
                )
            if not self.text:
                self.text_line = line_number
            self.text.append(line)
            return
        kind, value = marker
        if kind == "role":
            if value not in _ROLES:
                self.problems.append(
                    Problem(self.path, line_number, f"role {value[:40]!r} is not user or assistant")
                )
                return
            self.flush_message()
            self.role = value  # pyright: ignore[reportAttributeAccessIssue] -- checked against _ROLES above
            return
        self.embed(kind, value, line_number)


def parse_prompt(
    root: Path, path: str, source: str, *, max_bytes: int
) -> tuple[PromptSpec | None, list[Problem]]:
    """A prompt from the text of library file `path`, or the problems that stop it loading."""
    problems: list[Problem] = []
    lines = source.split("\n")
    if not lines or lines[0].rstrip() != FENCE:
        return None, [
            Problem(path, 1, "a prompt file starts with a '---' line opening its YAML front matter")
        ]
    closing = next((index for index in range(1, len(lines)) if lines[index].rstrip() == FENCE), None)
    if closing is None:
        return None, [Problem(path, 1, "the front matter is never closed by a '---' line")]
    front, key_lines = _front_matter(path, "\n".join(lines[1:closing]), 2, problems)
    body = _BodyParser(root, path, max_bytes, problems)
    for index in range(closing + 1, len(lines)):
        body.feed(index + 1, lines[index])
    body.flush_message()
    if front is None:
        return None, problems
    declared = {argument.name for argument in front.arguments}
    for name, line in sorted(body.used.items(), key=lambda item: item[1]):
        if name not in declared:
            problems.append(
                Problem(path, line, f"the template uses {name!r}, which is not a declared argument")
            )
    for index, argument in enumerate(front.arguments):
        if argument.name not in body.used:
            problems.append(
                Problem(
                    path,
                    _line_of(key_lines, ("arguments", index), 2),
                    f"argument {argument.name!r} is declared but the template never uses it",
                )
            )
    if not body.messages:
        problems.append(Problem(path, closing + 2, "the prompt has no message text after its front matter"))
    if problems:
        return None, problems
    name = front.name or Path(path).stem
    spec = PromptSpec(
        name=name,
        title=front.title,
        description=front.description.strip(),
        path=path,
        arguments=tuple(
            ArgumentSpec(
                name=argument.name,
                description=argument.description,
                required=argument.required,
                default=argument.default,
                allowed=tuple(argument.allowed) if argument.allowed is not None else None,
                suggestions=tuple(argument.suggestions or ()),
            )
            for argument in front.arguments
        ),
        tags=tuple(front.tags),
        version=front.version,
        messages=tuple(body.messages),
    )
    return spec, []


def load_prompt(root: Path, path: str, *, max_bytes: int) -> tuple[PromptSpec | None, list[Problem]]:
    """Read library file `path` (confined to `root`) and parse it."""
    try:
        data = read_confined(root, path, max_bytes)
    except LibraryPathError as exc:
        return None, [Problem(path, 1, f"cannot be loaded: it {exc}")]
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, [Problem(path, line, "is not UTF-8 text")]
    if source.startswith("\ufeff"):
        source = source[1:]
    return parse_prompt(root, path, source.replace("\r\n", "\n"), max_bytes=max_bytes)
