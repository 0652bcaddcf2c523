"""Sigma values as Spark SQL text: LIKE patterns, regular expressions (and the literal a regex
requires, to filter cheaply first), IPv4 networks, and tests over a field's every element."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from sigma.exceptions import SigmaValueError
from sigma.types import SigmaNumber, SigmaRegularExpressionFlag, SigmaString, SpecialChars

from loader.sigma.fields import Field
from loader.sql import sql_string

_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}


def like_pattern(value: SigmaString, fold: bool) -> tuple[str, bool]:
    """(the SQL text of ``value``, whether it has wildcards): a LIKE pattern with Sigma's
    ``*``/``?`` as ``%``/``_`` and the value's own ``%``, ``_`` and ``\\`` escaped, or the
    plain text when it has no wildcard."""
    wild = value.contains_special()
    out = []
    for part in value.s:
        if part is SpecialChars.WILDCARD_MULTI:
            out.append("%")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append("_")
        elif isinstance(part, str):
            text = part.lower() if fold else part
            if wild:
                text = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            out.append(text)
        else:  # a placeholder no pipeline replaced
            raise SigmaValueError(f"placeholder %{part}% has no value", source=value.source)
    return "".join(out), wild


def each(field: Field, test: Callable[[str], str], var: str = "x") -> str:
    """``test`` of the field's value, or of any of its values."""
    if field.values is None:
        return test(str(field.scalar))
    return f"exists({field.values}, {var} -> {test(var)})"


def as_text(sql: str, field: Field) -> str:
    return sql if field.kind == "string" else f"CAST({sql} AS STRING)"


def folded(sql: str, field: Field) -> str:
    return f"lower({as_text(sql, field)})"


def plain(value: Any) -> str:
    if isinstance(value, SigmaString):
        return like_pattern(value, fold=True)[0]
    return str(value.number if isinstance(value, SigmaNumber) else value)


_QUANTIFIED = {"*": False, "?": False, "+": True}  # does the quantified element stay required


def required_literal(regex: str) -> str | None:
    """The longest run of literal text (3 characters or more) that every match of ``regex``
    contains, or None. Conservative: a regex with a group, an alternation, a class or a
    counted repetition has none here."""
    if any(c in regex for c in "|()[]{}"):
        return None
    runs, run, i = [], "", 0
    while i < len(regex):
        char = regex[i]
        if char == "\\" and i + 1 < len(regex):
            escaped = regex[i + 1]
            literal = None if escaped.isalnum() else escaped  # \d, \w, \b... are not text
            i += 2
        elif char in ".^$":
            literal, i = None, i + 1
        elif char in _QUANTIFIED:
            return None  # a quantifier with nothing before it: not a regex to guess about
        else:
            literal, i = char, i + 1
        quantifier = regex[i] if i < len(regex) and regex[i] in _QUANTIFIED else None
        if quantifier:
            i += 1
            if i < len(regex) and regex[i] in "?+":  # lazy or possessive
                i += 1
        if literal is None or (quantifier and not _QUANTIFIED[quantifier]):
            runs.append(run)
            run = ""
            continue
        run += literal
        if quantifier:  # "a+": one 'a' is there; what follows may come after more of them
            runs.append(run)
            run = ""
    runs.append(run)
    best = max(runs, key=len)
    return best if len(best) >= 3 else None


def regex_text(value: Any) -> str:
    """A Sigma regular expression as an SQL literal for RLIKE, its flags inline."""
    flags = "".join(sorted(_FLAGS[f] for f in value.flags))
    return sql_string((f"(?{flags})" if flags else "") + value.regexp.original)


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def ipv4_in(sql: str, network: ipaddress.IPv4Network) -> str:
    """An IPv4 address as text within ``network``: its four numbers as one integer, between
    the network's first and last address (a text that is not a dotted quad never matches)."""
    octets = " + ".join(
        f"try_cast(split({sql}, '\\\\.')[{i}] AS BIGINT) * {256 ** (3 - i)}" for i in range(4)
    )
    low, high = int(network.network_address), int(network.broadcast_address)
    return (
        f"({sql} RLIKE '^[0-9]{{1,3}}(\\\\.[0-9]{{1,3}}){{3}}$' AND "
        f"({octets}) BETWEEN {low} AND {high})"
    )
