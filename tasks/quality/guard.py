"""The read-only guard: what a check's SQL may be.

A check runs against production, so its text is tokenised as the server would read it and
refused unless it is one query that reads (:func:`check_read_only`). The server's read-only
transaction (:mod:`tasks.quality.runner`) is the second wall.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["UnsafeCheckSQL", "check_read_only"]


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
# Functions that act on the server or the session from inside a SELECT.
_FORBIDDEN_FUNCTIONS = frozenset(
    {
        "dblink", "dblink_exec", "lo_export", "lo_import", "lo_unlink", "nextval", "pg_advisory_lock",
        "pg_advisory_xact_lock", "pg_cancel_backend", "pg_reload_conf", "pg_terminate_backend",
        "set_config", "setval",
    }
)  # fmt: skip
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
            i = end + 1
            yield '"'
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


def _refusal(tokens: list[str]) -> str | None:
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
        if token in _FORBIDDEN_FUNCTIONS and k + 1 < len(code) and code[k + 1] == "(":
            return f"calls {token}(), which acts on the server or the session"
    return None


def check_read_only(sql: str, label: str) -> None:
    """Refuse ``sql`` unless it is one query that reads: SELECT, WITH or VALUES, and nothing else.

    The text is tokenised as the server would (strings with '' escapes, "quoted identifiers",
    -- and /* */ comments, $tag$ strings), in every reading the supported servers allow
    (backslash escapes in strings or not, nested comments or not); each must pass, so text
    that one server would read as a string and another as code is refused.

    Raises:
        UnsafeCheckSQL: Naming ``label`` (the file) and the reason.

    """
    for reading in _READINGS:
        try:
            reason = _refusal(list(_code_tokens(sql, reading)))
        except UnsafeCheckSQL as exc:
            reason = str(exc)
        if reason is not None:
            raise UnsafeCheckSQL(
                f"{label} {reason}{reading.describe()}; a check must be one read-only query "
                "(SELECT, WITH or VALUES), see docs/validation.md"
            )
