"""Amazon S3 server access logs: the line format, as a regular expression for Hive's
``RegexSerDe``, and the SQL of the typed view over it.

One regular expression reads every format generation AWS has documented:

- 18 fields (to ``version_id``), the format until 2018;
- 24 fields (``host_id`` to ``tls_version`` added);
- 26 fields (``access_point_arn`` and ``acl_required``, 2022).

Missing trailing fields are NULL, and whatever AWS appends after the 26th field lands in
``extra`` instead of making the line unreadable. The expression works the same in Java (the
SerDe, ``RLIKE``) and in Python (the tests check every corpus line with :data:`LINE`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = r"(\S+)"
_QUOTED = r'("(?:[^"\\]|\\.)*"|-)'
_ESCAPED = r"\\(.)"  # a backslash escape inside a quoted field


@dataclass(frozen=True)
class LogField:
    name: str
    kind: str  # the type in the typed view
    pattern: str = _TOKEN
    comment: str = ""


FIELDS: tuple[LogField, ...] = (
    LogField("bucket_owner", "string", comment="canonical user ID of the bucket owner"),
    LogField("bucket", "string"),
    LogField("request_time", "timestamp", r"\[([^\]]*)\]", "when the request was received"),
    LogField("remote_ip", "string"),
    LogField("requester", "string", comment="canonical user ID or IAM ARN; NULL: anonymous"),
    LogField("request_id", "string"),
    LogField("operation", "string", comment="e.g. REST.GET.OBJECT, BATCH.DELETE.OBJECT"),
    LogField("key", "string", comment="object key, URL-encoded as logged"),
    LogField("request_uri", "string", _QUOTED, "the HTTP request line"),
    LogField("http_status", "int"),
    LogField("error_code", "string"),
    LogField("bytes_sent", "bigint"),
    LogField("object_size", "bigint"),
    LogField("total_time", "bigint", comment="milliseconds"),
    LogField("turn_around_time", "bigint", comment="milliseconds"),
    LogField("referrer", "string", _QUOTED),
    LogField("user_agent", "string", _QUOTED),
    LogField("version_id", "string"),
    # added in 2018 (24 fields)
    LogField("host_id", "string"),
    LogField("signature_version", "string"),
    LogField("cipher_suite", "string"),
    LogField("authentication_type", "string"),
    LogField("host_header", "string"),
    LogField("tls_version", "string"),
    # added in 2022 (26 fields)
    LogField("access_point_arn", "string"),
    LogField("acl_required", "boolean", comment="true when an ACL was required to authorize"),
)
GENERATIONS = (18, 24, 26)
EXTRA = "extra"


def _regex() -> str:
    first, second, third = (FIELDS[:18], FIELDS[18:24], FIELDS[24:])
    body = " ".join(f.pattern for f in first)
    body += "(?: " + " ".join(f.pattern for f in second) + ")?"
    body += "(?: " + " ".join(f.pattern for f in third) + ")?"
    return body + "(.*)"


REGEX = _regex()
LINE = re.compile(REGEX)
RAW_COLUMNS = [f.name for f in FIELDS] + [EXTRA]


def parse_line(line: str) -> dict[str, str | None] | None:
    """The raw (string) fields of one line, as the SerDe reads them; None if it does not parse."""
    match = LINE.fullmatch(line.rstrip("\r\n"))
    if match is None:
        return None
    return dict(zip(RAW_COLUMNS, match.groups(), strict=True))


def create_raw_table(db: str, table: str, location: str) -> str:
    """The lines through ``RegexSerDe``: one string column per field, NULL where absent."""
    from loader.sql import sql_string

    columns = ",\n  ".join(f"`{name}` STRING" for name in RAW_COLUMNS)
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {db}.{table} (\n  {columns}\n)\n"
        "ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.RegexSerDe'\n"
        f"WITH SERDEPROPERTIES ('input.regex' = {sql_string(REGEX)})\n"
        f"STORED AS TEXTFILE LOCATION {sql_string(location)}"
    )


def create_lines_table(db: str, table: str, location: str) -> str:
    """The same files, one whole line per row: what the SerDe could not read stays visible."""
    from loader.sql import sql_string

    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {db}.{table} (line STRING)\n"
        "ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\u0001'\n"
        f"STORED AS TEXTFILE LOCATION {sql_string(location)}"
    )


def _typed(field: LogField) -> str:
    from loader.sql import sql_string

    column = f"`{field.name}`"
    if field.kind == "timestamp":
        return f"to_timestamp({column}, 'dd/MMM/yyyy:HH:mm:ss Z')"
    if field.kind == "boolean":
        return f"CASE {column} WHEN 'Yes' THEN true WHEN '-' THEN false END"
    if field.pattern == _QUOTED:  # "text" -> text (backslash escapes undone); "-", - -> NULL
        unquoted = f"substring({column}, 2, length({column}) - 2)"
        inner = f"regexp_replace({unquoted}, {sql_string(_ESCAPED)}, '$1')"
        return f"CASE WHEN {column} IN ('-', '\"-\"') THEN NULL ELSE {inner} END"
    value = f"nullif({column}, '-')"
    return value if field.kind == "string" else f"try_cast({value} AS {field.kind.upper()})"


def typed_view_query(raw: str) -> str:
    """Typed columns over the raw table: times as timestamps, numbers as numbers, ``-`` as
    NULL, quotes removed; only lines that parsed (the unparsed view holds the others)."""
    columns = ",\n  ".join(f"{_typed(f)} AS `{f.name}`" for f in FIELDS)
    extra = f"nullif(trim(`{EXTRA}`), '') AS `{EXTRA}`"
    return f"SELECT\n  {columns},\n  {extra}\nFROM {raw}\nWHERE `bucket_owner` IS NOT NULL"


def unparsed_view_query(lines: str) -> str:
    """Lines that do not parse, with their file and why."""

    return (
        "SELECT input_file_name() AS file, line, CASE "
        "WHEN trim(line) = '' THEN 'empty line' "
        "WHEN size(split(trim(line), ' ')) < 18 "
        "THEN 'fewer than the 18 fields of the oldest format' "
        "ELSE 'does not match the S3 server access log format' END AS reason "
        f"FROM {lines} WHERE NOT {matches_sql('line')}"
    )


def matches_sql(column: str) -> str:
    """True where ``column`` is a whole line the SerDe reads (``RegexSerDe`` matches the whole
    line, ``RLIKE`` finds: hence the anchors)."""
    from loader.sql import sql_string

    return f"{column} RLIKE {sql_string('^' + REGEX + '$')}"
