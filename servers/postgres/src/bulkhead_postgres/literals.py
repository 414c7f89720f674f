"""Integer comparands of a read, lifted into parameters so that a repeated query shape skips Parse.

`SELECT * FROM t WHERE id = 42` and `... WHERE id = 43` differ in one number, yet each is a new
statement to prepare: one more round trip, and asyncpg's client-side work for a prepare (about
0.1 ms of CPU). Lifted, both are `SELECT * FROM t WHERE id = $1::pg_catalog.int4` with a value,
prepared once per connection and then bound and executed in one round trip.

Only what cannot change the statement's meaning is lifted: an integer literal (the parser's
`int4`) compared with a plain column reference by `=`, `<>`, `<`, `<=`, `>`, `>=`, `IN (...)` or
`BETWEEN`, in the top-level `WHERE` clause of a plain `SELECT`, under `AND` / `OR` / `NOT`, of a
statement without `$n` parameters of its own.
Casting the parameter to `int4` gives it the literal's own type, so operator resolution is the
same; the target list, `GROUP BY`, `ORDER BY` (where `1` means a column), `LIMIT`, type modifiers,
subqueries and set operations are never touched. A lifted statement is planned as any prepared
statement is: for its values on its first five runs, then with PostgreSQL's own choice between
that and a generic plan (`plan_cache_mode = auto`; planning each run anew cost 35 us per call).

The lifted text is proven, not trusted: it is parsed again and its tree must equal the original's
node for node, except that each lifted constant is now `$n::pg_catalog.int4` (locations aside).
Anything unexpected (a token that does not match the tree, a mismatch, too many constants) means
no lifting: the statement then runs as written.
"""

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast

from pglast.parser import ParseError, Token, parse_sql_json, scan

__all__ = [
    "MAX_LIFTED",
    "PROVEN_SHAPES",
    "IntegerShape",
    "Lifted",
    "integer_shape",
    "lift_integers",
    "relift",
]

MAX_LIFTED = 64
"""At most this many constants are lifted from one statement; past it, the statement runs as written."""

PROVEN_SHAPES = 256
"""Lifted texts whose proof is remembered. Another statement that lifts to the same text differs
from the proven one only in integer tokens at the lifted places (each checked against the scanner
and the tree), so the proof holds for it too, and the second parse is skipped."""

_PROVEN: OrderedDict[str, None] = OrderedDict()

_COMPARISONS = frozenset({"=", "<>", "!=", "<", "<=", ">", ">="})
_CAST = "::pg_catalog.int4"
_SPACE = " \t\n\r\f"
"""White space to PostgreSQL's scanner before version 16 (which added the vertical tab)."""
_POSITIONS = frozenset({"location", "stmt_location", "stmt_len", "rexpr_list_start", "rexpr_list_end"})
"""Keys that only say where a node is in the text, which lifting changes."""


@dataclass(frozen=True)
class Lifted:
    """A statement with its integer comparands as parameters, and the values to bind."""

    sql: str
    values: tuple[int, ...]
    moves: tuple[tuple[int, int, int, int], ...]
    """Per lifted constant: where its parameter starts and ends in `sql`, and where the literal
    started and ended in the original text (0-based characters, ends exclusive)."""

    def original_position(self, position: int) -> int:
        """The 1-based character of the original text for 1-based `position` in the lifted text.

        PostgreSQL reports error positions in the text it ran; the caller wrote the original.
        """
        index = position - 1
        shift = 0
        for start, end, original_start, original_end in self.moves:
            if index < start:
                break
            if index < end:
                return original_start + 1
            shift = end - original_end
        return index - shift + 1


def lift_integers(text: str, select: dict[str, Any]) -> Lifted | None:
    """Lift the integer comparands of `select` (the parsed `SelectStmt` of `text`), or return None.

    Args:
        text: the statement text exactly as it was parsed.
        select: the fields of its `SelectStmt` node from `parse_sql_json`.

    Returns:
        The lifted statement, or None when nothing can be lifted safely.
    """
    where = select.get("whereClause")
    if where is None or select.get("op", "SETOP_NONE") != "SETOP_NONE":
        return None
    constants: list[tuple[int, int]] = []  # (byte location, value)
    if not _collect(where, constants) or not constants or len(constants) > MAX_LIFTED:
        return None
    scanned = scan(text)
    if any(token.name == "PARAM" for token in scanned):
        # The caller's own `$1` would be numbered among ours and bound to a lifted value: a text
        # that fails for want of its parameter would run (and its `$2` would be our `$2`).
        return None
    return _rewrite(text, select, constants, scanned)


def _object(node: object) -> dict[str, Any]:
    """`node` as a JSON object, or an empty one if it is anything else."""
    return cast("dict[str, Any]", node) if isinstance(node, dict) else {}


def _maybe_object(node: object) -> dict[str, Any] | None:
    return cast("dict[str, Any]", node) if isinstance(node, dict) else None


def _array(node: object) -> list[Any] | None:
    return cast("list[Any]", node) if isinstance(node, list) else None


def _wrapped(node: object) -> tuple[str, dict[str, Any]] | None:
    """The type and fields of a wrapped node (`{"A_Expr": {...}}`), or None."""
    fields = _object(node)
    if len(fields) != 1:
        return None
    ((kind, inner),) = fields.items()
    inner_fields = _maybe_object(inner)
    return None if inner_fields is None else (kind, inner_fields)


def _collect(node: object, found: list[tuple[int, int]]) -> bool:
    """Add the liftable constants under a WHERE node; False if the walk met something unreadable."""
    stack = [node]
    while stack:
        wrapped = _wrapped(stack.pop())
        if wrapped is None:
            return False
        kind, fields = wrapped
        if kind == "BoolExpr":
            args = _array(fields.get("args"))
            if args is None:
                return False
            stack.extend(args)
        elif kind == "A_Expr":
            _comparison(fields, found)
    return True


def _comparison(fields: dict[str, Any], found: list[tuple[int, int]]) -> None:
    """Add the constants of `column op constant`, `constant op column`, IN and BETWEEN."""
    operator = _operator(fields.get("name"))
    kind = fields.get("kind")
    left, right = fields.get("lexpr"), fields.get("rexpr")
    if kind == "AEXPR_OP" and operator in _COMPARISONS:
        constant = _integer(right) if _is_column(left) else _integer(left) if _is_column(right) else None
        if constant is not None:
            found.append(constant)
        return
    in_list = kind == "AEXPR_IN" and operator in {"=", "<>"}
    between = kind in {"AEXPR_BETWEEN", "AEXPR_NOT_BETWEEN"} and operator in {"BETWEEN", "NOT BETWEEN"}
    items = _array(_object(_object(right).get("List")).get("items"))
    if (in_list or between) and _is_column(left) and items:
        constants = [_integer(item) for item in items]
        kept = [constant for constant in constants if constant is not None]
        if len(kept) == len(constants):
            found.extend(kept)


def _operator(name: object) -> str | None:
    parts = _array(name)
    if parts is None or len(parts) != 1:
        return None
    value = _object(_object(parts[0]).get("String")).get("sval")
    return value if isinstance(value, str) else None


def _is_column(node: object) -> bool:
    wrapped = _wrapped(node)
    return wrapped is not None and wrapped[0] == "ColumnRef"


def _integer(node: object) -> tuple[int, int] | None:
    """(byte location, value) of an integer literal node, or None for anything else."""
    wrapped = _wrapped(node)
    if wrapped is None or wrapped[0] != "A_Const" or set(wrapped[1]) != {"ival", "location"}:
        return None
    value, location = _object(wrapped[1]["ival"]).get("ival", 0), wrapped[1]["location"]
    if type(value) is not int or type(location) is not int:
        return None
    return location, value


def _token_value(token: str) -> int | None:
    """The value of a plain decimal integer token, or None.

    Hexadecimal, octal, binary and underscore spellings (`0x1F`, `1_000`) are left alone: they
    are PostgreSQL 16 syntax, and a server older than that must refuse them as written.
    """
    return int(token) if token.isascii() and token.isdigit() else None


def _rewrite(
    text: str, select: dict[str, Any], constants: list[tuple[int, int]], scanned: list[Token]
) -> Lifted | None:
    encoded = text.encode()
    ascii_only = len(encoded) == len(text)
    tokens = {token.start: token for token in scanned}
    ordered = list(tokens.values())
    following = {token.start: ordered[index + 1] for index, token in enumerate(ordered[:-1])}
    spans: list[tuple[int, int, int]] = []  # (start, end) in characters of `text`, value
    for location, value in sorted(constants):
        start = location if ascii_only else len(encoded[:location].decode())
        token = tokens.get(start)
        if token is None:
            return None
        sign = 1
        if token.name == "ASCII_45":  # a folded minus sign: `-1` is one constant to the parser
            token, sign = following.get(start), -1
            # Only the white space of every server in between: pglast's scanner (PostgreSQL 17)
            # also skips a vertical tab, which PostgreSQL 15 refuses as written.
            if token is None or text[start + 1 : token.start].strip(_SPACE):
                return None
        if token.name != "ICONST" or _token_value(text[token.start : token.end + 1]) != sign * value:
            return None
        spans.append((start, token.end + 1, value))
    lifted = _assemble(text, spans)
    if lifted.sql in _PROVEN:
        _PROVEN.move_to_end(lifted.sql)
        return lifted
    if not _same_tree(select, lifted.sql, len(spans)):
        return None
    _PROVEN[lifted.sql] = None
    if len(_PROVEN) > PROVEN_SHAPES:
        _PROVEN.popitem(last=False)
    return lifted


def _assemble(text: str, spans: list[tuple[int, int, int]]) -> Lifted:
    """`text` with each span (start, end, value; characters, in order) replaced by `$n::int4`."""
    pieces: list[str] = []
    moves: list[tuple[int, int, int, int]] = []
    written = 0
    length = 0
    for number, (start, end, _) in enumerate(spans, 1):
        pieces.append(text[written:start])
        length += start - written
        replacement = f"${number}{_CAST}"
        pieces.append(replacement)
        moves.append((length, length + len(replacement), start, end))
        length += len(replacement)
        written = end
    pieces.append(text[written:])
    return Lifted("".join(pieces), tuple(value for _, _, value in spans), tuple(moves))


@dataclass(frozen=True)
class IntegerShape:
    """A statement's text with each plain decimal integer literal masked out.

    Two texts with the same `key` differ only in the digits of those literals. The tokens around
    them are the same, so PostgreSQL's grammar reads both the same way, and whatever the guard
    decides from the tree (which never depends on an integer's value in a `SELECT`) and which of
    those integers `lift_integers` lifts hold for both.
    """

    key: str
    """The text, each masked literal replaced by one NUL (which no accepted text contains)."""
    literals: tuple[tuple[int, int, int], ...]
    """Per masked literal, in order: its start and end (characters), and where the token before
    it starts (-1 if none): a folded minus sign makes that the start of the constant."""


def integer_shape(text: str) -> IntegerShape | None:
    """The shape of `text`, or None if it has no plain decimal integer (or cannot be scanned)."""
    if "\x00" in text:
        return None
    try:
        tokens = scan(text)
    except (ParseError, ValueError):  # ValueError: a lone surrogate cannot be encoded
        return None
    pieces: list[str] = []
    literals: list[tuple[int, int, int]] = []
    written = 0
    previous = -1
    for token in tokens:
        end = token.end + 1
        if token.name == "ICONST" and text[token.start : end].isdigit() and text[token.start : end].isascii():
            pieces.append(text[written : token.start])
            pieces.append("\x00")
            literals.append((token.start, end, previous))
            written = end
        previous = token.start
    if not literals:
        return None
    pieces.append(text[written:])
    return IntegerShape("".join(pieces), tuple(literals))


def relift(text: str, shape: IntegerShape, template: Lifted, template_shape: IntegerShape) -> Lifted | None:
    """`text`'s lifted form, given a `template` of the same shape that `lift_integers` made.

    The same literals (by position in the shape) are lifted, with this text's values; a folded
    minus sign is part of the constant exactly when it was in the template. None if the two
    shapes do not line up.
    """
    if shape.key != template_shape.key or len(shape.literals) != len(template_shape.literals):
        return None
    literals = template_shape.literals
    starts = {start: index for index, (start, _, _) in enumerate(literals)}
    minus = {previous: index for index, (_, _, previous) in enumerate(literals) if previous >= 0}
    spans: list[tuple[int, int, int]] = []
    for _, _, original_start, _ in template.moves:
        negated = original_start not in starts
        index = minus.get(original_start, -1) if negated else starts[original_start]
        if index < 0:
            return None
        start, end, previous = shape.literals[index]
        value = int(text[start:end])
        spans.append((previous, end, -value) if negated else (start, end, value))
    return _assemble(text, spans)


def _same_tree(original: dict[str, Any], lifted_sql: str, count: int) -> bool:
    """Whether `lifted_sql` parses to `original` with constants 1..count turned into `$n::int4`."""
    lifted = _parsed_select(lifted_sql)
    return lifted is not None and _equal_but_lifted(original, lifted) == set(range(1, count + 1))


def _parsed_select(sql: str) -> dict[str, Any] | None:
    """The fields of the one `SelectStmt` that `sql` parses to, or None."""
    try:
        statements = _array(_object(json.loads(parse_sql_json(sql))).get("stmts")) or []
    except (ParseError, RecursionError, ValueError):
        return None
    wrapped = _wrapped(_object(statements[0]).get("stmt")) if len(statements) == 1 else None
    return wrapped[1] if wrapped is not None and wrapped[0] == "SelectStmt" else None


def _equal_but_lifted(original: dict[str, Any], lifted: dict[str, Any]) -> set[int] | None:
    """Where `lifted` has `$n::int4` for an integer of `original`: the numbers n.

    None if the two trees differ anywhere else (locations aside).
    """
    seen: set[int] = set()
    stack: list[tuple[object, object]] = [(original, lifted)]
    while stack:
        left, right = stack.pop()
        left_fields, right_fields = _maybe_object(left), _maybe_object(right)
        left_items, right_items = _array(left), _array(right)
        if left_fields is not None and right_fields is not None:
            number = _parameter_number(right_fields)
            if number is None:
                keys = set(left_fields) - _POSITIONS
                if keys != set(right_fields) - _POSITIONS:
                    return None
                stack.extend((left_fields[key], right_fields[key]) for key in keys)
            elif _integer(left_fields) is None or number in seen:
                return None
            else:
                seen.add(number)
        elif left_items is not None and right_items is not None:
            if len(left_items) != len(right_items):
                return None
            stack.extend(zip(left_items, right_items, strict=True))
        elif left != right or type(left) is not type(right):
            return None
    return seen


def _parameter_number(node: dict[str, Any]) -> int | None:
    """N for the node of `$n::pg_catalog.int4`, else None."""
    wrapped = _wrapped(node)
    if wrapped is None or wrapped[0] != "TypeCast":
        return None
    names = _array(_object(wrapped[1].get("typeName")).get("names")) or []
    spelled = [_object(_object(name).get("String")).get("sval") for name in names]
    parameter = _wrapped(wrapped[1].get("arg"))
    if spelled != ["pg_catalog", "int4"] or parameter is None or parameter[0] != "ParamRef":
        return None
    number = parameter[1].get("number")
    return number if type(number) is int else None
