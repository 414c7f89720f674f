"""The SQL guard: one read-only statement, judged by PostgreSQL's own grammar.

This is defence in depth, not the boundary: the database role and the READ ONLY transaction are.
Its job is to refuse early, with a sentence the model can act on, anything that is not exactly one
read-only statement (`SELECT`, `VALUES`, `TABLE`, `SHOW`, or `EXPLAIN` of a `SELECT`), and every
call of a function on `DENIED_FUNCTIONS`, wherever it sits in the tree and however it is written
(schema-qualified, quoted, in any case, or in field notation: `(x).pg_read_file`). Whatever cannot
be parsed or checked is refused (fail closed).

The tree comes from `pglast.parser.parse_sql_json` (libpg_query's own serialisation), not from
`pglast.parse_sql`: the latter builds Python nodes with a C recursion that has no depth check, so a
long enough chain such as `SELECT 1+1+...+1` (about 50 kB) overflows the C stack and kills the
process. The JSON path checks stack depth in C, raises a catchable error instead, and is about ten
times faster. The walk over the tree is iterative and looks at every object and every list in it.
"""

import functools
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal, TypeAlias

import pglast.ast
from pglast.parser import ParseError, comments, parse_sql_json, split

from bulkhead.errors import InvalidArgumentError
from bulkhead_postgres.denylist import DENIED_FUNCTIONS, denied_reason
from bulkhead_postgres.literals import IntegerShape, Lifted, integer_shape, lift_integers, relift

__all__ = [
    "DENIED_FUNCTIONS",
    "MAX_SQL_LENGTH",
    "CheckedStatement",
    "QueryRejectedError",
    "check_explainable",
    "check_read_only",
]

_Json: TypeAlias = "dict[str, _Json] | list[_Json] | str | int | float | bool | None"

CACHED_VERDICTS = 256
"""Accepted statements whose verdict is remembered: parsing is most of the guard's cost."""

CACHED_SQL_LENGTH = 4096
"""Only statements up to this many characters are remembered, so the cache stays small."""

MAX_SQL_LENGTH = 100_000
"""The longest text, in characters, the guard will parse: past it, parsing alone takes a tenth of a
second or more (a full megabyte takes one to two seconds), and no hand-written query is that long."""

_ALLOWED = "send one read-only SELECT, VALUES, TABLE, EXPLAIN or SHOW statement instead"

# --- the deny list -------------------------------------------------------------------------------

# --- statements ----------------------------------------------------------------------------------

_STATEMENT_TYPES = frozenset(name for name in vars(pglast.ast) if name.endswith("Stmt")) - {"SelectStmt"}
"""Every statement node type but SELECT's: none of them may appear inside a read."""

_MARKERS = _STATEMENT_TYPES | {"funcname", "fields", "indirection", "intoClause", "lockingClause", "ctequery"}
"""Field names and node types that make the walk look closer at an object."""

_WRITES = {"InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE", "MergeStmt": "MERGE"}
"""Data-modifying statements, by parse-tree node type."""

_SESSION = "it would end the read-only transaction or change the state of the session"
_MAINTENANCE = "it runs maintenance work on the server"
_CODE = "it runs code or prepared statements this guard cannot check"

_STATEMENT_REASONS: dict[str, str] = {
    **dict.fromkeys(_WRITES, "it modifies data"),
    "TransactionStmt": _SESSION,
    "VariableSetStmt": _SESSION,
    "DiscardStmt": _SESSION,
    "ListenStmt": _SESSION,
    "UnlistenStmt": _SESSION,
    "DeclareCursorStmt": _SESSION,
    "FetchStmt": _SESSION,
    "ClosePortalStmt": _SESSION,
    "DeallocateStmt": _SESSION,
    "PrepareStmt": _CODE,
    "ExecuteStmt": _CODE,
    "DoStmt": _CODE,
    "CallStmt": _CODE,
    "LoadStmt": _CODE,
    "NotifyStmt": "it sends a notification to other sessions",
    "LockStmt": "it locks tables",
    "CopyStmt": "it moves data through files, programs or the client outside a query",
    "VacuumStmt": _MAINTENANCE,
    "CheckPointStmt": _MAINTENANCE,
    "ClusterStmt": _MAINTENANCE,
    "ReindexStmt": _MAINTENANCE,
    "RefreshMatViewStmt": _MAINTENANCE,
    "CreateTableAsStmt": "it creates a table or materialized view",
}
_SCHEMA_CHANGE = "it changes the database schema, its objects or their permissions"

_INNER_LABELS = {
    **_WRITES,
    "DeclareCursorStmt": "DECLARE CURSOR",
    "CreateTableAsStmt": "CREATE TABLE AS",
    "RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW",
    "ExecuteStmt": "EXECUTE",
}
"""Labels of statements met inside another one (in EXPLAIN or in a WITH clause)."""

_LOCKS = {
    "LCS_FORKEYSHARE": "FOR KEY SHARE",
    "LCS_FORSHARE": "FOR SHARE",
    "LCS_FORNOKEYUPDATE": "FOR NO KEY UPDATE",
    "LCS_FORUPDATE": "FOR UPDATE",
}

_WHITESPACE = " \t\n\r\f\v"
"""What PostgreSQL's scanner treats as white space (str.strip's default is wider)."""

_FIRST_WORD = re.compile(r"[A-Za-z_]+")
_TOO_DEEP = ("stack depth limit exceeded", "memory exhausted")
"""Parser messages that mean the statement nests too deeply, not that its syntax is wrong."""


class QueryRejectedError(InvalidArgumentError):
    """The SQL is not exactly one read-only statement; the text says what was refused and why."""


@dataclass(frozen=True)
class CheckedStatement:
    """A statement the guard accepted.

    Attributes:
        sql: the text to run: exactly the statement that was judged, as the caller wrote it, without
            the comments or white space around it and without a trailing semicolon.
        kind: `"select"` (also `VALUES` and `TABLE`), `"show"` or `"explain"`.
        explain_analyze: whether it is an `EXPLAIN ANALYZE`, which runs the statement it explains.
        lifted: the same statement with its integer comparands as parameters (`literals`), for a
            runner that prepares repeated shapes once; None when nothing could be lifted.
    """

    sql: str
    kind: Literal["select", "show", "explain"]
    explain_analyze: bool
    lifted: Lifted | None = None


def check_read_only(sql: str, *, allow_explain_analyze: bool = False) -> CheckedStatement:
    """Accept `sql` only if it is exactly one read-only statement.

    Accepted: `SELECT` (with `VALUES` and `TABLE`), `SHOW`, and `EXPLAIN` of a `SELECT`. Refused
    anywhere in the tree: data-modifying statements (also inside `WITH`), `SELECT ... INTO`, row
    locks (`FOR UPDATE` and its kin), and calls of `DENIED_FUNCTIONS`.

    Args:
        sql: the statement text as the model sent it.
        allow_explain_analyze: accept `EXPLAIN ANALYZE` (in any spelling), which runs the statement.

    Returns:
        The statement to run, its kind, and whether it is an `EXPLAIN ANALYZE`.

    Raises:
        QueryRejectedError: the text is not exactly one read-only statement, cannot be parsed, or
            calls a denied function; the message says which and what to send instead.
    """
    if len(sql) <= CACHED_SQL_LENGTH:
        return _cached_check(sql, allow_explain_analyze)
    return _check(sql, allow_explain_analyze=allow_explain_analyze, explainable=False, lift=False)


@functools.lru_cache(maxsize=CACHED_VERDICTS)
def _cached_check(sql: str, allow_explain_analyze: bool) -> CheckedStatement:
    # Only acceptances are kept (a rejection raises, and lru_cache keeps no exceptions): the
    # verdict is a pure function of the text, so a repeated statement skips the parse. A text
    # that differs from an accepted `SELECT` only in the digits of its integer literals is
    # accepted like it without parsing (see `literals.IntegerShape`: nothing the guard checks in
    # a `SELECT` depends on an integer's value; EXPLAIN, whose options may be numbers, is left out).
    shape = integer_shape(sql)
    if shape is not None:
        known = _SHAPES.get((shape.key, allow_explain_analyze))
        if known is not None:
            _SHAPES.move_to_end((shape.key, allow_explain_analyze))
            template, template_shape = known
            lifted = None if template.lifted is None else relift(sql, shape, template.lifted, template_shape)
            if template.lifted is None or lifted is not None:
                return CheckedStatement(sql, "select", explain_analyze=False, lifted=lifted)
    statement = _check(sql, allow_explain_analyze=allow_explain_analyze, explainable=False, lift=True)
    if shape is not None and statement.kind == "select" and statement.sql == sql:
        _SHAPES[(shape.key, allow_explain_analyze)] = (statement, shape)
        if len(_SHAPES) > CACHED_VERDICTS:
            _SHAPES.popitem(last=False)
    return statement


_SHAPES: OrderedDict[tuple[str, bool], tuple[CheckedStatement, IntegerShape]] = OrderedDict()
"""Accepted plain `SELECT`s by integer shape (most recently used last)."""


def check_explainable(sql: str) -> CheckedStatement:
    """Accept `sql` only if it is one read-only `SELECT`, `VALUES` or `TABLE` statement to explain.

    For a tool that adds `EXPLAIN` itself: `SHOW` and statements that already are an `EXPLAIN` are
    refused, as is everything `check_read_only` refuses.

    Args:
        sql: the statement text as the model sent it, without `EXPLAIN`.

    Returns:
        The statement, of kind `"select"`.

    Raises:
        QueryRejectedError: the text is not one read-only statement that can be explained.
    """
    return _check(sql, allow_explain_analyze=False, explainable=True, lift=False)


def _check(sql: str, *, allow_explain_analyze: bool, explainable: bool, lift: bool) -> CheckedStatement:
    text, offset = _only_statement(sql)
    serialised = _serialise(sql, text, offset)
    node_type, fields = _only_entry(_field(_load(serialised), "stmt"))
    kind: Literal["select", "show", "explain"]
    analyze = False
    lifted: Lifted | None = None
    if node_type == "SelectStmt":
        kind = "select"
        _inspect(fields)
        if lift:
            lifted = lift_integers(text, fields)
    elif node_type == "VariableShowStmt":
        if explainable:
            raise _rejected("SHOW cannot be explained; pass a SELECT, VALUES or TABLE statement")
        kind = "show"
    elif node_type == "ExplainStmt":
        if explainable:
            raise _rejected("the statement already starts with EXPLAIN; pass only the statement to explain")
        inner_type, _ = _only_entry(_field(fields, "query"))
        if inner_type != "SelectStmt":
            label = _INNER_LABELS.get(inner_type, inner_type)
            raise _rejected(
                f"EXPLAIN of {label} is not allowed: this server only reads; explain a SELECT instead"
            )
        analyze = _is_analyze(_field(fields, "options"))
        if analyze and not allow_explain_analyze:
            raise _rejected(
                "EXPLAIN ANALYZE runs the statement and is not enabled on this server; "
                "use EXPLAIN without ANALYZE to see the plan"
            )
        kind = "explain"
        _inspect(fields)
    else:
        reason = _STATEMENT_REASONS.get(node_type, _SCHEMA_CHANGE)
        label = _WRITES.get(node_type) or _first_word(text)
        raise _rejected(f"{label} is not allowed: {reason}; {_ALLOWED}")
    return CheckedStatement(
        _without_trailing_comments(text, serialised), kind, explain_analyze=analyze, lifted=lifted
    )


def _only_statement(sql: str) -> tuple[str, int]:
    """Insist on exactly one statement; return its text and where it starts in `sql`.

    The text is cut where the parser found the statement to begin and end, so the comments and
    white space before it and the semicolon and white space after it go.
    """
    if len(sql) > MAX_SQL_LENGTH:
        raise _rejected(
            f"the text is {len(sql)} characters long and the limit is {MAX_SQL_LENGTH}; "
            "send a shorter statement"
        )
    if "\x00" in sql:
        raise _rejected("the text contains a NUL character, which PostgreSQL cannot accept; remove it")
    try:
        sql.encode()
    except UnicodeEncodeError as error:
        raise _rejected(
            "the text is not valid Unicode (it holds a lone surrogate); send it as plain UTF-8"
        ) from error
    try:
        pieces = split(sql, with_parser=True, only_slices=True)
    except ParseError as error:
        raise _rejected(_parse_error_message(sql, error, 0)) from error
    if len(pieces) != 1:
        if not pieces:
            raise _rejected(f"the text holds no statement, only white space or comments; {_ALLOWED}")
        raise _rejected(
            f"only one statement per call is allowed and the text holds {len(pieces)}; "
            "send `SELECT ...` statements one at a time"
        )
    (piece,) = pieces
    start, end = piece.start or 0, piece.stop or len(sql)
    # pglast strips the slice with str.strip(), whose white space includes characters such as
    # U+00A0 that PostgreSQL reads as part of an identifier: take those back.
    while end < len(sql) and sql[end].isspace():
        end += 1
    return sql[start:end].rstrip(_WHITESPACE), start


def _serialise(sql: str, text: str, offset: int) -> str:
    """Parse `text`, found in `sql` at `offset`, into libpg_query's JSON serialisation.

    The tree judged is the tree of the very text that will run, not of the text it was cut from.
    """
    try:
        return parse_sql_json(text)
    except ParseError as error:
        raise _rejected(_parse_error_message(sql, error, offset)) from error


def _load(serialised: str) -> _Json:
    """The one raw statement (`stmt`, `stmt_location`, `stmt_len`) of a serialised parse tree."""
    try:
        tree: _Json = json.loads(serialised)
    except RecursionError:
        raise _rejected(_too_deep()) from None  # the chained traceback would be as deep as the tree
    statements = _field(tree, "stmts")
    if not isinstance(statements, list) or len(statements) != 1:
        raise _unreadable()
    return statements[0]


def _without_trailing_comments(text: str, serialised: str) -> str:
    """`text` without the comments at its end, so a caller can wrap or extend it safely.

    A trailing `-- comment` would swallow anything appended on the same line (a `LIMIT`, say).
    The cut is kept only if the parser sees exactly the same tree in what is left; otherwise the
    text stays whole, which is still the text that was judged.
    """
    if not (text.endswith("*/") or "--" in text.rpartition("\n")[2]):
        return text
    trimmed = text
    try:
        found = list(comments(text))
        while found and trimmed.endswith(found[-1].str):
            trimmed = trimmed[: -len(found.pop().str)].rstrip(_WHITESPACE)
        same = trimmed != text and parse_sql_json(trimmed) == serialised
    except ParseError:
        same = False
    return trimmed if same else text


def _inspect(root: _Json) -> None:
    """Walk the whole tree below a statement and refuse anything that is not a pure read.

    Every object and every list is visited, whatever field holds it, so a subquery, a CTE, a
    `LATERAL` item, a window definition or a function argument gets the same scrutiny as the
    select list. Objects are recognised by their field names as well as their node type:
    libpg_query leaves out the node-type wrapper for fields of a fixed type (`larg` and `rarg` of
    a set operation are bare `SelectStmt` fields), so node types alone would miss them.
    """
    stack: list[_Json] = [root]
    while stack:
        value = stack.pop()
        if type(value) is list:
            stack.extend(value)
        elif type(value) is dict:
            if not _MARKERS.isdisjoint(value):
                _judge(value)
            stack.extend(value.values())


def _judge(node: dict[str, _Json]) -> None:
    """Refuse a node that writes, locks, creates a table or calls a denied function."""
    cte = _field(node, "ctequery")
    if cte is not None:
        kind, _ = _only_entry(cte)
        if kind in _STATEMENT_TYPES:
            raise _nested_error(kind, "inside a WITH clause")
    if "intoClause" in node:
        raise _rejected("SELECT ... INTO creates a table; use a plain SELECT")
    if "lockingClause" in node:
        raise _lock_error(node["lockingClause"])
    if "funcname" in node:
        _check_function(node["funcname"])
    if "fields" in node:
        _check_field_names(node["fields"], skip=1)
    if "indirection" in node:
        _check_field_names(node["indirection"], skip=0)
    for kind in _STATEMENT_TYPES.intersection(node):
        raise _nested_error(kind, "inside the statement")


def _check_function(funcname: _Json) -> None:
    """Refuse a call of a denied function; `funcname` is the list of its name's parts."""
    if not isinstance(funcname, list) or not funcname:
        raise _unreadable()
    name = _field(_field(funcname[-1], "String"), "sval")
    if not isinstance(name, str):
        raise _unreadable()
    reason = _denial(name)
    if reason is not None:
        raise _rejected(f"function {name.lower()} is not allowed: {reason}")


def _check_field_names(parts: _Json, *, skip: int) -> None:
    """Refuse `x.name` or `(expr).name` where `name` is a denied function.

    PostgreSQL reads field notation on a value that has no such field as a call of the function
    of that name with the value as its argument: `('/etc/passwd'::text).pg_read_file` reads the
    file. `skip` leaves out the parts that cannot be read that way (the first of a column name).
    """
    if not isinstance(parts, list):
        raise _unreadable()
    for part in parts[skip:]:
        name = _field(_field(part, "String"), "sval")
        if not isinstance(name, str):
            continue  # a subscript or a `*`
        reason = _denial(name)
        if reason is not None:
            raise _rejected(
                f"field notation .{name.lower()} is not allowed: PostgreSQL reads it as a call of "
                f"the function {name.lower()}, and {reason}"
            )


def _denial(name: str) -> str | None:
    """Why the function `name` (any case, without its schema) is denied, or None if it is not."""
    bare = name.lower()
    return denied_reason(bare)


def _lock_error(clauses: _Json) -> QueryRejectedError:
    first = clauses[0] if isinstance(clauses, list) and clauses else None
    strength = _field(_field(first, "LockingClause"), "strength")
    lock = _LOCKS.get(strength, "FOR UPDATE") if isinstance(strength, str) else "FOR UPDATE"
    return _rejected(f"SELECT ... {lock} locks rows; remove the locking clause, this server only reads")


def _nested_error(node_type: str, where: str) -> QueryRejectedError:
    label = _INNER_LABELS.get(node_type, node_type)
    does = "modifies data" if node_type in _WRITES else "is not a read"
    return _rejected(f"{label} {where} {does}; this server only reads")


def _is_analyze(options: _Json) -> bool:
    """Whether EXPLAIN options turn ANALYZE on; anything but a clear false counts as on."""
    if not isinstance(options, list):
        return False
    for option in options:
        element = _field(option, "DefElem")
        name = _field(element, "defname")
        if isinstance(name, str) and name.lower() in {"analyze", "analyse"} and not _is_false(element):
            return True
    return False


def _is_false(element: _Json) -> bool:
    """Whether a DefElem's argument is one of PostgreSQL's spellings of false (0, false, off)."""
    arg = _field(element, "arg")
    if arg is None:
        return False
    kind, value = _only_entry(arg)
    if kind == "Integer":
        return not _field(value, "ival")  # 0 is left out of the JSON
    if kind == "Boolean":
        return not _field(value, "boolval")
    if kind == "String":
        sval = _field(value, "sval")
        return isinstance(sval, str) and sval.lower() in {"false", "off"}
    return False


def _parse_error_message(sql: str, error: ParseError, offset: int) -> str:
    """Say what the parser refused and where in `sql`; the parser saw `sql` from `offset` on."""
    message = str(error.args[0]) if error.args else "the parser refused it"
    if message.startswith(_TOO_DEEP):
        return _too_deep()
    index = error.args[1] if len(error.args) > 1 else None
    where = ""
    if isinstance(index, int) and 0 <= index + offset <= len(sql):
        index += offset
        line = sql.count("\n", 0, index) + 1
        column = index - sql.rfind("\n", 0, index)
        where = f" (at character {index + 1}, line {line}, column {column})"
    return f"the text is not valid SQL: {message}{where}; fix it and send it again"


def _too_deep() -> str:
    return (
        "the statement nests too deeply to check (a very long chain of operators, UNIONs or JOINs, "
        "or deeply nested subqueries or parentheses); simplify it or split it into smaller queries"
    )


def _first_word(text: str) -> str:
    match = _FIRST_WORD.match(text)
    return match.group().upper() if match else "This statement"


def _field(node: _Json, name: str) -> _Json:
    return node.get(name) if isinstance(node, dict) else None


def _only_entry(node: _Json) -> tuple[str, dict[str, _Json]]:
    """The type and fields of a wrapped node (`{"SelectStmt": {...}}`)."""
    if isinstance(node, dict) and len(node) == 1:
        ((kind, fields),) = node.items()
        if isinstance(fields, dict):
            return kind, fields
    raise _unreadable()


def _unreadable() -> QueryRejectedError:
    return _rejected(f"the guard could not read the parsed statement, so it refuses it; {_ALLOWED}")


def _rejected(reason: str) -> QueryRejectedError:
    return QueryRejectedError(f"Query rejected: {reason}.")
