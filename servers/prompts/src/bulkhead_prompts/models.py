"""What a prompt file becomes once loaded, and what rendering it produces. No MCP imports."""

from dataclasses import dataclass, field
from typing import Literal

from jinja2 import Template
from pydantic import BaseModel, Field

__all__ = [
    "ArgumentInfo",
    "ArgumentSpec",
    "Embed",
    "Message",
    "MessageOut",
    "Part",
    "Problem",
    "PromptInfo",
    "PromptPage",
    "PromptSpec",
    "RenderedMessage",
    "RenderedPrompt",
    "Role",
    "Segment",
]

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a library file: where it is and why, as `path:line: reason`."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class ArgumentSpec:
    """One declared argument of a prompt."""

    name: str
    description: str | None = None
    required: bool = False
    default: str | None = None
    allowed: tuple[str, ...] | None = None
    """The only values accepted, when set."""
    suggestions: tuple[str, ...] = ()
    """Values offered by completion; any other value is accepted too."""

    @property
    def choices(self) -> tuple[str, ...]:
        """What completion offers for this argument."""
        return self.allowed if self.allowed is not None else self.suggestions


@dataclass(frozen=True)
class Segment:
    """A run of template text inside one message of a prompt body (parsed, compiled on first use)."""

    source: str
    line: int
    """The file line the text starts on."""
    compiled: list[Template] = field(default_factory=list[Template], compare=False, repr=False)
    """The compiled template once it has been rendered: compiling is most of loading's cost."""


@dataclass(frozen=True)
class Embed:
    """A library file included whole, as an embedded resource or an image."""

    path: str
    """Relative to the library root, with forward slashes."""
    kind: Literal["embed", "image"]
    line: int


Part = Segment | Embed


@dataclass(frozen=True)
class Message:
    """One message of a prompt body: a role and the parts that render into its content."""

    role: Role
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class PromptSpec:
    """A prompt loaded from one library file."""

    name: str
    description: str
    path: str
    """The file, relative to the library root."""
    title: str | None = None
    arguments: tuple[ArgumentSpec, ...] = ()
    tags: tuple[str, ...] = ()
    version: str | None = None
    messages: tuple[Message, ...] = field(default=())

    def argument(self, name: str) -> ArgumentSpec | None:
        """The declared argument called `name`, if any."""
        return next((argument for argument in self.arguments if argument.name == name), None)


@dataclass(frozen=True)
class RenderedMessage:
    """One message of a rendered prompt: text, or a library file to embed."""

    role: Role
    text: str | None = None
    uri: str | None = None
    mime_type: str | None = None
    data: bytes | None = None
    kind: Literal["text", "embed", "image"] = "text"


class ArgumentInfo(BaseModel):
    """One argument of a prompt, as the list_prompts tool shows it."""

    name: str
    description: str | None = None
    required: bool = False
    default: str | None = None
    allowed: list[str] | None = Field(default=None, description="The only values accepted, when set")


class PromptInfo(BaseModel):
    """One prompt of the library."""

    name: str
    title: str | None = None
    description: str
    arguments: list[ArgumentInfo]
    tags: list[str] = Field(default_factory=list[str])


class PromptPage(BaseModel):
    """A page of prompts, sorted by name."""

    prompts: list[PromptInfo]
    total: int
    next_cursor: str | None = Field(default=None, description="Pass back as cursor for the next page")


class MessageOut(BaseModel):
    """One rendered message: its text, or the library file it embeds."""

    role: Role
    text: str | None = None
    resource_uri: str | None = Field(default=None, description="prompts://library/<path> of an embedded file")
    mime_type: str | None = None


class RenderedPrompt(BaseModel):
    """A prompt rendered with the given arguments, ready to use as a conversation."""

    name: str
    description: str
    messages: list[MessageOut]
