"""What a rule may refer to, without a JVM: the events relation's columns (with their nested
struct fields) and the functions Spark and this project provide."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from loader.tables.cloudtrail_schema import view_columns

FUNCTIONS_FILE = Path(__file__).with_name("spark_functions.txt")

# A type as a tree: "string" etc. for leaves, {"field": type} for structs, ["array", type].
Type = object


def parse_type(text: str) -> Type:
    """'struct<a:string,b:array<struct<c:int>>>' -> {'a': 'string', 'b': ['array', {...}]}."""
    value, rest = _parse(text.strip())
    assert not rest, rest
    return value


def _parse(text: str) -> tuple[Type, str]:
    if text.startswith("struct<"):
        fields: dict[str, Type] = {}
        rest = text[len("struct<") :]
        while not rest.startswith(">"):
            name, _, rest = rest.partition(":")
            kind, rest = _parse(rest)
            fields[name] = kind
            rest = rest[1:] if rest.startswith(",") else rest
        return fields, rest[1:]
    if text.startswith("array<"):
        element, rest = _parse(text[len("array<") :])
        return ["array", element], rest[1:]
    end = min((i for i in (text.find(","), text.find(">")) if i >= 0), default=len(text))
    return text[:end], text[end:]


@lru_cache(maxsize=1)
def event_columns() -> dict[str, tuple[str, Type]]:
    """lower-case name -> (name as written, type) for every column of `cloudtrail`."""
    return {name.lower(): (name, parse_type(kind)) for name, kind in view_columns()}


@lru_cache(maxsize=1)
def known_functions() -> frozenset[str]:
    from udfs import UDF_NAMES

    names = [
        line.strip().lower()
        for line in FUNCTIONS_FILE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return frozenset(names) | frozenset(UDF_NAMES)
