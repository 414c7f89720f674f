"""Rendering prompt bodies in Jinja2's immutable sandbox, with argument values as plain data.

Argument values reach a template only as context variables: Jinja never evaluates a value, so
`{{ 7*7 }}` sent as an argument comes out as those eight characters. Role and embed markers are
parsed from the file before any rendering (see `loader`), so a value cannot add a message or embed
a file either. The sandbox keeps templates themselves away from Python internals (`__class__`,
`__globals__`, unsafe methods) and the environment has no loader, so `{% include %}` can reach no
file; `loader` rejects it at load time with a clear reason.
"""

import base64
import mimetypes
from collections.abc import Mapping
from pathlib import Path

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bulkhead_prompts.files import LibraryPathError, read_confined
from bulkhead_prompts.models import Embed, PromptSpec, RenderedMessage

__all__ = ["EMBED_URI_PREFIX", "ENVIRONMENT", "ArgumentError", "EmbedError", "render", "validate_arguments"]

ENVIRONMENT = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
"""The one template environment: sandboxed, strict about undefined names, no loader, no autoescape."""

EMBED_URI_PREFIX = "prompts://library/"
"""Embedded library files are named `prompts://library/<path>`: no host path ever leaves the server."""


class ArgumentError(ValueError):
    """An argument the caller must fix; `argument` names it."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


class EmbedError(RuntimeError):
    """An embedded library file that cannot be read (the library is broken, not the request)."""


def validate_arguments(
    spec: PromptSpec, arguments: Mapping[str, str] | None, *, max_chars: int
) -> dict[str, str]:
    """The template context for `arguments`: checked against the declaration, defaults filled in.

    Raises:
        ArgumentError: an unknown argument, a missing required one, a value outside the allowed
            set, or one longer than `max_chars`.
    """
    given = dict(arguments or {})
    declared = {argument.name for argument in spec.arguments}
    for name in sorted(given):
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ArgumentError(
                name[:60], f"Prompt {spec.name!r} has no argument {name[:60]!r}; its arguments are: {known}."
            )
    context: dict[str, str] = {}
    for argument in spec.arguments:
        value = given.get(argument.name)
        if value is None:
            if argument.required:
                raise ArgumentError(
                    argument.name, f"Prompt {spec.name!r} needs the argument {argument.name!r}."
                )
            value = argument.default if argument.default is not None else ""
        elif not isinstance(value, str):  # pyright: ignore[reportUnnecessaryIsInstance] -- JSON may say otherwise
            raise ArgumentError(argument.name, f"Argument {argument.name!r} must be a string.")
        if len(value) > max_chars:
            raise ArgumentError(
                argument.name,
                f"Argument {argument.name!r} is {len(value)} characters long; the limit is {max_chars}.",
            )
        if argument.allowed is not None and value not in argument.allowed and argument.name in given:
            allowed = ", ".join(argument.allowed)
            raise ArgumentError(
                argument.name,
                f"Argument {argument.name!r} must be one of: {allowed} (got {value[:60]!r}).",
            )
        context[argument.name] = value
    return context


def _embed(root: Path, embed: Embed, role: str, max_bytes: int) -> RenderedMessage:
    try:
        data = read_confined(root, embed.path, max_bytes)
    except LibraryPathError as exc:
        raise EmbedError(f"embedded file {embed.path} {exc}") from None
    mime_type = mimetypes.guess_type(embed.path)[0] or "application/octet-stream"
    uri = EMBED_URI_PREFIX + embed.path
    if embed.kind == "image":
        return RenderedMessage(role=role, kind="image", uri=uri, mime_type=mime_type, data=data)  # pyright: ignore[reportArgumentType] -- role is a Role
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return RenderedMessage(role=role, kind="embed", uri=uri, mime_type=mime_type, data=data)  # pyright: ignore[reportArgumentType] -- role is a Role
    if mime_type == "application/octet-stream":
        mime_type = "text/plain"
    return RenderedMessage(role=role, kind="embed", uri=uri, mime_type=mime_type, text=text)  # pyright: ignore[reportArgumentType] -- role is a Role


def render(
    spec: PromptSpec, context: Mapping[str, str], root: Path, *, max_bytes: int
) -> list[RenderedMessage]:
    """The messages of `spec` rendered with `context` (from `validate_arguments`).

    Text parts that render to nothing but whitespace are left out. Embedded files are read now,
    so an edit to one shows at the next get without a reload.
    """
    messages: list[RenderedMessage] = []
    for message in spec.messages:
        for part in message.parts:
            if isinstance(part, Embed):
                messages.append(_embed(root, part, message.role, max_bytes))
                continue
            if not part.compiled:
                part.compiled.append(ENVIRONMENT.from_string(part.source))
            text = part.compiled[0].render(context).strip()
            if text:
                messages.append(RenderedMessage(role=message.role, text=text))
    return messages


def image_data(message: RenderedMessage) -> str:
    """Base64 of an image or binary embed."""
    return base64.b64encode(message.data or b"").decode("ascii")


def compile_template(source: str) -> Template:
    """A template for `source` in the sandbox (raises `jinja2.TemplateSyntaxError`)."""
    return ENVIRONMENT.from_string(source)
