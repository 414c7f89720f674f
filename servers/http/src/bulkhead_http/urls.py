r"""Request URLs built so that no argument can leave its operation.

Each path parameter is percent-encoded as one segment (`/`, `?`, `#`, `%`, `;`, `\\` and everything
outside the unreserved set are escaped; `.` and `..` are refused), and the finished path is
checked against the operation's template before anything is sent. The origin of the finished URL
must be the API's own: scheme, host and port.
"""

import re
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import quote, urlsplit

from bulkhead.errors import InvalidArgumentError

__all__ = ["Origin", "expand_path", "origin_of", "path_matches", "scalar_text"]

Origin = tuple[str, str, int]
"""(scheme, host, port) with the scheme's default port filled in."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def origin_of(url: str) -> Origin:
    """The (scheme, host, port) of `url`, lower-cased, with the default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    return scheme, host, parts.port or _DEFAULT_PORTS.get(scheme, 0)


def scalar_text(value: object, what: str) -> str:
    """A JSON scalar as it travels in a URL or header: true/false, numbers, strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise InvalidArgumentError(f"{what} must be a string, number or boolean.")


def expand_path(template: str, values: Mapping[str, object]) -> str:
    """`template` with each `{name}` replaced by its value, encoded as exactly one segment."""

    def encode(match: re.Match[str]) -> str:
        name = match.group(1)
        text = scalar_text(values[name], f"path parameter {name!r}")
        if text in ("", ".", ".."):
            raise InvalidArgumentError(
                f"path parameter {name!r} may not be empty, '.' or '..'; pass the identifier itself."
            )
        # `;` too: servlet containers cut a segment at `;` (path parameters), so `..;x` is `..`.
        return quote(text, safe="-._~!$&'()*+,=:@")

    path = _PLACEHOLDER.sub(encode, template)
    if not path_matches(template, path):
        raise InvalidArgumentError("the path parameters do not form a path of this operation.")
    return path


@lru_cache(maxsize=1024)
def _pattern(template: str) -> re.Pattern[str]:
    out = "^"
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        out += re.escape(template[position : match.start()])
        # One segment of allowed characters: no slash, no raw ? or #, no bare dot segment.
        out += r"(?!\.{1,2}(?:/|$))[A-Za-z0-9\-._~!$&'()*+,=:@%]+"
        position = match.end()
    return re.compile(out + re.escape(template[position:]) + "$")


def path_matches(template: str, path: str) -> bool:
    """Whether `path` is `template` with one well-formed segment per placeholder."""
    if "/../" in path + "/" or "/./" in path + "/":
        return False
    return _pattern(template).match(path) is not None
