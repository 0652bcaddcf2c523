"""Where a Sigma field name is in a CloudTrail event, as Spark SQL over the `cloudtrail` view.

Sigma names fields as they are in the event's JSON (``eventName``, ``userIdentity.arn``,
``requestParameters.containerDefinitions.command``). In the view they are of four kinds:

- a column or a field of a struct column (``userIdentity.sessionContext.sessionIssuer.type``):
  one value, read as it is;
- a column that is an array of structs (``resources.ARN``): several values;
- a key inside one of the JSON-text columns (``requestParameters``, ``responseElements``,
  ``additionalEventData``, ``serviceEventDetails``): its values, read with
  ``get_json_object`` one key at a time, so that an array met on the way (``layers``,
  ``containerDefinitions``) yields each element: a field that is an array in real events
  matches when any element does, as Sigma's backends for document stores do;
- a whole JSON-text column (``requestParameters|contains: 'Suspended'``): its text.

Anything else is not in CloudTrail (SigmaHQ's ``aws_delete_saml_provider`` asks for
``status``) and fails the rule with the field's name: a rule that silently never matches is
worse than one that is refused. Pure Python; no pySigma and no JVM.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from loader.rules.schema import event_columns
from loader.sql import sql_string

# Columns whose value is a JSON document kept as text
JSON_COLUMNS = (
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "serviceEventDetails",
)
# Columns that only the loader adds: a Sigma rule cannot mean them
_INTERNAL = {"account", "region", "dt", "source_file", "raw_json"}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# An element of a JSON array, or a scalar as one element: get_json_object returns an array or
# object as its JSON text, so a text that parses as an array of values stands for its elements
# (a string value that happens to look like a JSON array, "[1]", is read as one too).
_ELEMENTS = (
    "CASE WHEN startswith({t}, '[') THEN coalesce(from_json({t}, 'array<string>'), array({t})) "
    "ELSE array({t}) END"
)


class UnknownField(ValueError):
    """A Sigma field that no CloudTrail event has; the message names it."""


@dataclass(frozen=True)
class Field:
    """A field resolved: ``scalar`` is one SQL value; ``values`` an SQL array of values (any
    of which may match); ``text`` marks a whole JSON column matched on its text."""

    name: str  # as written in the view (canonical spelling)
    scalar: str | None = None
    values: str | None = None
    text: bool = False
    kind: str = "string"  # the SQL type of the scalar: string, boolean, timestamp, ...


def canonical(name: str) -> str:
    """The view's spelling of a Sigma field: columns and struct fields matched regardless of
    case (as Spark resolves them); keys inside JSON columns kept as written (JSON keys are
    case-sensitive). Raises :class:`UnknownField` for a field CloudTrail does not have."""
    head, _, rest = name.partition(".")
    columns = event_columns()
    found = columns.get(head.lower())
    if found is None or head.lower() in _INTERNAL:
        known = [spelling for spelling, _ in columns.values() if spelling not in _INTERNAL]
        hint = difflib.get_close_matches(head, known, n=1, cutoff=0.7)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise UnknownField(f"field '{name}' is not in CloudTrail events{suggestion}")
    spelled, kind = found
    if not rest or spelled in JSON_COLUMNS:
        return spelled + ("." + rest if rest else "")
    parts = [spelled]
    for key in rest.split("."):
        if isinstance(kind, list):  # an array of structs: its elements' field
            kind = kind[1]
        if not isinstance(kind, dict):
            raise UnknownField(f"field '{name}': '{'.'.join(parts)}' has no field '{key}'")
        by_lower = {k.lower(): (k, v) for k, v in kind.items()}
        if key.lower() not in by_lower:
            raise UnknownField(f"field '{name}': '{'.'.join(parts)}' has no field '{key}'")
        spelling, kind = by_lower[key.lower()]
        parts.append(spelling)
    return ".".join(parts)


def resolve(name: str) -> Field:
    """The SQL for a field (see the module's doc); ``name`` as :func:`canonical` spells it."""
    name = canonical(name)
    head, _, rest = name.partition(".")
    kind = event_columns()[head.lower()][1]
    if head in JSON_COLUMNS:
        if not rest:
            return Field(name, scalar=_quote(head), text=True)
        return Field(name, values=json_values(_quote(head), rest.split(".")))
    sql = _quote(head)
    in_array = False
    for key in rest.split(".") if rest else []:
        if isinstance(kind, list):
            in_array, kind = True, kind[1]
        kind = kind[key]  # type: ignore[index]
        sql += "." + _quote(key)
    if isinstance(kind, list):
        in_array = True
    if in_array:
        return Field(name, values=sql)
    return Field(name, scalar=sql, kind=kind if isinstance(kind, str) else "struct")


def json_values(column: str, keys: list[str]) -> str:
    """SQL for the array of values at ``keys`` inside the JSON text ``column``, any array on
    the way contributing each of its elements."""
    values = _ELEMENTS.format(t=_get(column, keys[0]))
    for key in keys[1:]:
        values = f"flatten(transform({values}, j -> {_ELEMENTS.format(t=_get('j', key))}))"
    return values


def _get(document: str, key: str) -> str:
    path = f"$.{key}" if _KEY.match(key) else "$['" + key.replace("'", "\\'") + "']"
    return f"get_json_object({document}, {sql_string(path)})"


def _quote(name: str) -> str:
    return name if _KEY.match(name) else "`" + name.replace("`", "``") + "`"
