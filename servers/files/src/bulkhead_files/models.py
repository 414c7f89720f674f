"""What bulkhead-files' tools return (structured output with an output schema)."""

from typing import Literal

from pydantic import BaseModel, Field

from bulkhead.results import unchecked_items

__all__ = ["DirectoryListing", "Entry", "FileInfo", "FoundFiles", "ReadFileOutput", "TextMatch", "TextSearch"]

EntryType = Literal["file", "directory", "symlink", "other"]


class Entry(BaseModel):
    """One directory entry."""

    name: str
    type: EntryType
    size: int | None = Field(default=None, description="Bytes, for files")
    modified: str | None = Field(default=None, description="Last modification, ISO 8601 UTC")


class DirectoryListing(BaseModel):
    """One page of a directory's entries, sorted by name."""

    path: str = Field(description="The directory's absolute path")
    entries: list[str] = Field(
        description=(
            "Names (strings), sorted; directories end with /, symbolic links with @, "
            "other special files with |"
        ),
        json_schema_extra=unchecked_items,
    )
    details: list[Entry] | None = Field(
        default=None, description="With details=true: each entry's type, size and modified time"
    )
    total: int = Field(description="How many entries the directory has (hidden and denied ones not counted)")
    next_cursor: str | None = Field(default=None, description="Pass back as cursor for the next page")


class ReadFileOutput(BaseModel):
    """Where a read_file range sits in the file; the bytes themselves are in the content block."""

    path: str
    mime_type: str
    encoding: Literal["utf-8", "base64"] = Field(
        description="utf-8: the content is the text; base64: a binary file, as an embedded blob"
    )
    offset: int = Field(description="First byte returned")
    length: int = Field(description="Bytes returned")
    size: int = Field(description="The file's size in bytes")
    truncated: bool = Field(description="True when more of the file follows")
    next_offset: int | None = Field(default=None, description="Pass as offset to read on")


class FoundFiles(BaseModel):
    """Files whose names match a glob, one page at a time."""

    paths: list[str]
    next_cursor: str | None = None
    stopped: str | None = Field(
        default=None, description="Why the walk stopped early (time or entry limit); narrow the path or glob"
    )


class TextMatch(BaseModel):
    """One line that matched."""

    path: str
    line: int = Field(description="Line number, from 1")
    text: str = Field(description="The line, cut to 400 characters")


class TextSearch(BaseModel):
    """Matching lines, in file and line order."""

    matches: list[TextMatch]
    files_searched: int
    truncated: bool = Field(description="True when the search stopped before the end")
    stopped: str | None = Field(default=None, description="Why: match limit, time limit or entry limit")


class FileInfo(BaseModel):
    """Metadata of one file or directory."""

    path: str
    type: EntryType
    size: int
    modified: str
    accessed: str
    changed: str = Field(description="Last metadata change (ctime), ISO 8601 UTC")
    permissions: str = Field(description="Octal mode bits, such as 0644")
    mime_type: str | None = None
    uri: str = Field(description="The file:// resource URI of a file")
