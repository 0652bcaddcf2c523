"""SQL text helpers every layer uses: string literals and checked identifiers."""

from __future__ import annotations

import re

from loader.errors import LoaderError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_identifier(name: str, what: str = "database") -> str:
    """NAME when it is a plain identifier (letters, digits, underscores), else a clear error:
    database and table names are put into SQL text."""
    if not _IDENTIFIER.match(name):
        raise LoaderError(
            f"invalid {what} name {name!r}: use letters, digits and underscores, "
            "starting with a letter"
        )
    return name


def sql_string(value: str) -> str:
    """A single-quoted Spark SQL string literal (backslashes and quotes escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_name(name: str) -> str:
    """A backquoted Spark SQL name."""
    return "`" + name.replace("`", "``") + "`"
