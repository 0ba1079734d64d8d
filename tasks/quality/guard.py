"""The read-only guard: what a check's SQL may be.

A check runs against production, so its text is tokenised as the server would read it and
refused unless it is one query that reads (:func:`check_read_only`). The server's read-only
transaction (:mod:`tasks.quality.runner`) is the second wall.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from tasks.warehouse.dialects import dialect_classes

__all__ = ["ALLOWED_BY_DIALECT", "DENIED_BY_DIALECT", "UnsafeCheckSQL", "allowed_functions", "check_read_only"]


class UnsafeCheckSQL(ValueError):
    """A check's SQL is not one read-only query; the message names the file and the reason."""


_FIRST_WORDS = frozenset({"select", "with", "values"})
# Statements (and clauses) that change data, schema, transaction or session state. Matched as whole
# words outside strings, quoted identifiers and comments: a column such as ``updated_at`` or a
# function such as ``replace()`` is not one of them; a column really named ``delete`` must be quoted.
_FORBIDDEN_WORDS = frozenset(
    {
        "abort", "alter", "analyze", "attach", "begin", "call", "checkpoint", "cluster", "comment",
        "commit", "copy", "create", "deallocate", "delete", "detach", "discard", "do", "drop",
        "execute", "export", "grant", "import", "insert", "install", "into", "listen", "load", "lock",
        "merge", "notify", "prepare", "pragma", "refresh", "reindex", "release", "reset", "revoke",
        "rollback", "savepoint", "set", "truncate", "unlisten", "unload", "update", "use", "vacuum",
    }
)  # fmt: skip
# ------------------------------------------------------------------ the function guard
# A check may call only the functions named here (the allowlist): aggregates, arithmetic, text,
# dates and windows, enough for any check over the project's tables. Everything else is
# refused before the SQL reaches a server, whatever it is called: a new PostgreSQL extension or
# DuckDB function that reads a file cannot slip in because nobody thought to list it.
_ALLOWED_FUNCTIONS = frozenset(
    {
        # aggregates and statistics
        "avg", "bool_and", "bool_or", "corr", "count", "covar_pop", "covar_samp", "every", "max",
        "min", "percentile_cont", "percentile_disc", "regr_slope", "stddev", "stddev_pop",
        "stddev_samp", "sum", "var_pop", "var_samp", "variance",
        # windows
        "cume_dist", "dense_rank", "first_value", "lag", "last_value", "lead", "nth_value", "ntile",
        "percent_rank", "rank", "row_number",
        # conditionals, casts and arithmetic
        "abs", "cast", "cbrt", "ceil", "ceiling", "coalesce", "degrees", "exp", "floor", "greatest",
        "least", "ln", "log", "mod", "nullif", "pi", "power", "radians", "round", "sign", "sqrt",
        "trunc", "acos", "asin", "atan", "atan2", "cos", "sin", "tan",
        # text
        "btrim", "char_length", "character_length", "concat", "left", "length", "lower", "lpad",
        "ltrim", "position", "replace", "reverse", "right", "rpad", "rtrim", "split_part", "strpos",
        "substr", "substring", "trim", "upper",
        # dates and times
        "date_part", "date_trunc", "extract",
    }
)  # fmt: skip
# Each warehouse's own functions, declared by its dialect class (keyed by SQLAlchemy backend name):
# the extra ones a check may call there, on top of the above, and what the allowlist exists to keep
# out: functions that read or write files, reach the network, change or read the session and
# server, handle large objects, administer other sessions or sleep. None of those is allowed (a
# test holds that); they get a more pointed message.
ALLOWED_BY_DIALECT: dict[str, frozenset[str]] = {
    name: cls.check_functions for name, cls in dialect_classes().items() if cls.check_functions
}
DENIED_BY_DIALECT: dict[str, frozenset[str]] = {
    name: cls.denied_check_functions for name, cls in dialect_classes().items() if cls.denied_check_functions
}
# Words a "(" may follow without being a call: keywords and type names (``NUMERIC(10, 2)``).
_NOT_CALLS = frozenset(
    {
        "all", "and", "any", "array", "as", "between", "by", "case", "cube", "distinct", "else",
        "end", "except", "exists", "filter", "from", "group", "grouping", "having", "ilike", "in",
        "intersect", "is", "join", "lateral", "like", "limit", "not", "offset", "on", "or", "order",
        "over", "partition", "recursive", "rollup", "row", "select", "sets", "some", "then",
        "union", "using", "values", "when", "where", "with", "within",
        "char", "character", "dec", "decimal", "float", "interval", "numeric", "time", "timestamp",
        "varchar",
    }
)  # fmt: skip
# Clause keywords: a string or a file-like quoted name right after FROM/JOIN (or a FROM list's
# comma) is a table DuckDB would read from a file or URL (``FROM '/etc/passwd'``).
_CLAUSES = frozenset(
    {
        "from", "join", "select", "where", "group", "having", "order", "limit", "offset", "on",
        "using", "union", "except", "intersect", "window", "qualify", "values", "with",
    }
)  # fmt: skip
_TABLE_CLAUSES = frozenset({"from", "join"})
_WORD = re.compile(r"[^\W\d][\w$]*")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")


@dataclass(frozen=True)
class _Reading:
    """One way a server may read the text (they differ; the guard demands that every reading pass)."""

    backslash_escapes: bool = False  # E'...' always; plain strings too with standard_conforming_strings off
    nested_comments: bool = True  # PostgreSQL and DuckDB nest /* */; a server that does not ends earlier

    def describe(self) -> str:
        parts = ["backslashes escaping quotes"] if self.backslash_escapes else []
        parts += [] if self.nested_comments else ["/* */ comments that do not nest"]
        return " (read with " + " and ".join(parts) + ")" if parts else ""


_READINGS = tuple(_Reading(b, n) for b in (False, True) for n in (True, False))


def _skip_string(sql: str, i: int, backslash: bool) -> int:
    """Index after the single-quoted string opening at ``i`` ('' escapes, and backslash ones if asked)."""
    j = i + 1
    while j < len(sql):
        c = sql[j]
        if backslash and c == "\\":
            j += 2
        elif c == "'":
            if sql.startswith("''", j):
                j += 2
            else:
                return j + 1
        else:
            j += 1
    raise UnsafeCheckSQL("has an unterminated string literal")


def _skip_comment(sql: str, i: int, nested: bool) -> int:
    """Index after the ``/* */`` comment opening at ``i``."""
    depth, j = 1, i + 2
    while j < len(sql):
        if sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        elif nested and sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        else:
            j += 1
    raise UnsafeCheckSQL("has an unterminated /* comment")


def _code_tokens(sql: str, reading: _Reading) -> Iterator[str]:
    """The SQL's code tokens: words (lower-cased) and punctuation.

    Strings, quoted identifiers and numbers become placeholders; comments vanish.
    """
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            i = _skip_comment(sql, i, reading.nested_comments)
        elif c == "'":
            i = _skip_string(sql, i, reading.backslash_escapes)
            yield "'"
        elif c == '"':
            end = i + 1
            while True:
                end = sql.find('"', end)
                if end < 0:
                    raise UnsafeCheckSQL('has an unterminated "quoted identifier"')
                if not sql.startswith('""', end):
                    break
                end += 2
            yield '"' + sql[i + 1 : end].replace('""', '"')  # '"' and the name
            i = end + 1
        elif c == "$" and (tag := _DOLLAR_TAG.match(sql, i)):
            end = sql.find(tag.group(0), tag.end())
            if end < 0:
                raise UnsafeCheckSQL(f"has an unterminated {tag.group(0)} string")
            i = end + len(tag.group(0))
            yield "'"
        elif word := _WORD.match(sql, i):
            i = word.end()
            if word.group(0) in ("E", "e") and sql.startswith("'", i):  # E'...': backslash escapes
                i = _skip_string(sql, i, backslash=True)
                yield "'"
            else:
                yield word.group(0).lower()
        elif number := _NUMBER.match(sql, i):
            i = number.end()
            yield "0"
        else:
            i += 1
            yield c


def _refusal(tokens: list[str], dialect: str | None) -> str | None:
    """Why these tokens are not one read-only query, or None when they are."""
    if ";" in tokens and any(t != ";" for t in tokens[tokens.index(";") :]):
        return "holds more than one statement (something follows a ';')"
    code = [t for t in tokens if t != ";"]
    first = next((t for t in code if t != "("), None)
    if first is None:
        return "holds no statement"
    if first not in _FIRST_WORDS:
        return f"starts with {first.upper()!r}, not SELECT, WITH or VALUES"
    for k, token in enumerate(code):
        if k and code[k - 1] == ".":
            continue  # a qualified name: t.update is a column, not a statement
        if token in _FORBIDDEN_WORDS:
            return f"uses {token.upper()}, which can change data or the session (quote a column of that name)"
    return _function_refusal(code, dialect) or _file_table_refusal(code)


def allowed_functions(dialect: str | None = None) -> frozenset[str]:
    """The functions a check may call on ``dialect`` (None: on any supported warehouse)."""
    if dialect is None:
        return _ALLOWED_FUNCTIONS | frozenset().union(*ALLOWED_BY_DIALECT.values())
    return _ALLOWED_FUNCTIONS | ALLOWED_BY_DIALECT.get(dialect, frozenset())


def _function_refusal(code: list[str], dialect: str | None) -> str | None:
    """Why a call in ``code`` is not allowed, or None: every call must name an allowed function."""
    allowed = allowed_functions(dialect)
    for k, token in enumerate(code[:-1]):
        if code[k + 1] != "(" or (k and code[k - 1] in ("as", ":")):
            continue  # not a call; or an alias's column list / a type after AS or ::
        if k and code[k - 1] == ".":
            return f"calls a qualified function or method (.{token.strip(chr(34))}()), which checks may not call"
        if token.startswith('"'):
            return f'calls a quoted name ({token}"()) as a function, which checks may not do'
        if not _WORD.fullmatch(token) or token in _NOT_CALLS:
            continue
        if token in allowed:
            continue
        denied = [d for d, names in DENIED_BY_DIALECT.items() if token in names and dialect in (None, d)]
        if denied:
            return (
                f"calls {token}(), which reaches outside the data on {', '.join(sorted(denied))} (files, "
                "network, session, large objects, administration or sleep); checks may not call it"
            )
        return f"calls {token}(), which is not on the list of functions a check may call"
    return None


def _file_table_refusal(code: list[str]) -> str | None:
    """A string or file-like quoted name where a table belongs: DuckDB would read that file or URL."""
    clause: dict[int, str] = {0: ""}
    depth = 0
    for k, token in enumerate(code):
        if token == "(":
            depth += 1
            # A function's parentheses: FROM there is EXTRACT(... FROM x) or TRIM(... FROM x).
            is_call = k > 0 and bool(_WORD.fullmatch(code[k - 1])) and code[k - 1] not in _NOT_CALLS
            clause[depth] = "call" if is_call else ""
        elif token == ")":
            depth = max(depth - 1, 0)
        elif token in _CLAUSES and clause.get(depth) != "call":
            clause[depth] = token
        previous = code[k - 1] if k else ""
        in_table_place = (previous in _TABLE_CLAUSES and clause.get(depth) != "call") or (
            previous == "," and clause.get(depth) == "from"
        )
        if not in_table_place:
            continue
        if token == "'":
            return "reads a string as a table (DuckDB would read that file or URL); name a table"
        if token.startswith('"') and any(c in token for c in "/\\.:"):
            return f'reads {token}" as a table, which DuckDB would read as a file or URL; name a table'
    return None


def check_read_only(sql: str, label: str, dialect: str | None = None) -> None:
    """Refuse ``sql`` unless it is one query that reads: SELECT, WITH or VALUES, and nothing else.

    The text is tokenised as the server would (strings with '' escapes, "quoted identifiers",
    -- and /* */ comments, $tag$ strings), in every reading the supported servers allow
    (backslash escapes in strings or not, nested comments or not); each must pass, so text
    that one server would read as a string and another as code is refused. Every function it
    calls must be on the allowlist (:func:`allowed_functions` of ``dialect``; None allows what
    any supported warehouse allows), and no string or file-like name may stand where a table
    belongs.

    Raises:
        UnsafeCheckSQL: Naming ``label`` (the file) and the reason.

    """
    for reading in _READINGS:
        try:
            reason = _refusal(list(_code_tokens(sql, reading)), dialect)
        except UnsafeCheckSQL as exc:
            reason = str(exc)
        if reason is not None:
            raise UnsafeCheckSQL(
                f"{label} {reason}{reading.describe()}; a check must be one read-only query "
                "(SELECT, WITH or VALUES) calling only allowed functions, see docs/validation.md"
            )
