"""The CloudTrail event as the ``cloudtrail`` view exposes it.

Events are stored as raw JSON text and typed by ``from_json`` in a view, so a field that changes
type or a field AWS adds tomorrow never makes a file unreadable. Every leaf is parsed as STRING
(a JSON object read as STRING yields its JSON text, a boolean its word), and only the columns
whose type users rely on are converted afterwards, with ``try_cast`` so that a bad value becomes
NULL instead of failing the query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SESSION_CONTEXT = (
    "struct<attributes:struct<creationDate:string,mfaAuthenticated:string>,"
    "sessionIssuer:struct<type:string,principalId:string,arn:string,accountId:string,"
    "userName:string>,"
    "webIdFederationData:struct<federatedProvider:string,attributes:string>,"
    "sourceIdentity:string,ec2RoleDelivery:string,ec2IssuedInVPC:string,assumedRoot:string>"
)
USER_IDENTITY = (
    "struct<type:string,principalId:string,arn:string,accountId:string,accessKeyId:string,"
    f"userName:string,invokedBy:string,identityProvider:string,credentialId:string,"
    f"sessionContext:{SESSION_CONTEXT},"
    "onBehalfOf:struct<userId:string,identityStoreArn:string>,"
    "inScopeOf:struct<issuerType:string,credentialsIssuedTo:string>>"
)
INSIGHT_DETAILS = (
    "struct<state:string,eventSource:string,eventName:string,insightType:string,"
    "errorCode:string,insightContext:string>"
)

# A zone-less eventTime ('2024-01-02 03:04:05', seen in exports) is UTC, whatever the session's
# time zone: append 'Z' before the cast so the instant never depends on who runs the query.
EVENT_TIME_SQL = (
    "try_cast(CASE WHEN e.eventTime RLIKE '(Z|z|[+-][0-9]{2}:?[0-9]{2})$' THEN e.eventTime "
    "ELSE concat(e.eventTime, 'Z') END AS TIMESTAMP)"
)


@dataclass(frozen=True)
class Field:
    """One CloudTrail field: name, type as parsed from JSON, and the view's SQL for it."""

    name: str
    json_type: str = "string"
    sql_type: str = "string"
    expression: str | None = None  # None: e.<name> as parsed

    def select_sql(self) -> str:
        if self.expression:
            return f"{self.expression} AS {self.name}"
        return f"e.{self.name} AS {self.name}"


def _bool(name: str) -> Field:
    return Field(name, sql_type="boolean", expression=f"try_cast(e.{name} AS BOOLEAN)")


EVENT_FIELDS: tuple[Field, ...] = (
    Field("eventVersion"),
    Field("userIdentity", USER_IDENTITY, USER_IDENTITY),
    Field("eventTime", sql_type="timestamp", expression=EVENT_TIME_SQL),
    Field("eventSource"),
    Field("eventName"),
    Field("awsRegion"),
    Field("sourceIPAddress"),
    Field("userAgent"),
    Field("errorCode"),
    Field("errorMessage"),
    Field("requestParameters"),
    Field("responseElements"),
    Field("additionalEventData"),
    Field("requestID"),
    Field("eventID"),
    _bool("readOnly"),
    Field(
        "resources",
        "array<struct<ARN:string,accountId:string,type:string>>",
        "array<struct<ARN:string,accountId:string,type:string>>",
    ),
    Field("eventType"),
    Field("apiVersion"),
    _bool("managementEvent"),
    Field("recipientAccountId"),
    Field("sharedEventID"),
    Field("vpcEndpointId"),
    Field("vpcEndpointAccountId"),
    Field("serviceEventDetails"),
    Field("eventCategory"),
    Field(
        "addendum",
        "struct<reason:string,updatedFields:string,originalRequestID:string,"
        "originalEventID:string>",
        "struct<reason:string,updatedFields:string,originalRequestID:string,"
        "originalEventID:string>",
    ),
    _bool("sessionCredentialFromConsole"),
    Field("edgeDeviceDetails"),
    Field(
        "tlsDetails",
        "struct<tlsVersion:string,cipherSuite:string,clientProvidedHostHeader:string>",
        "struct<tlsVersion:string,cipherSuite:string,clientProvidedHostHeader:string>",
    ),
)

# Columns the view derives from the fields above (not parsed from JSON). `principal` is who
# acted: the ARN, else the principal id (AWS services, some federated and anonymous calls).
# ({e}: where the event's fields are, "e." in the view, "" over a relation of its columns)
DERIVED = {"principal": "coalesce(nullif({e}userIdentity.arn, ''), {e}userIdentity.principalId)"}
DERIVED_FIELDS: tuple[Field, ...] = tuple(
    Field(name, expression=sql.format(e="e.")) for name, sql in DERIVED.items()
)


def derived_sql(name: str, prefix: str = "") -> str:
    """A derived column's SQL over the event's columns (``prefix``: their relation, e.g.
    ``t.``)."""
    return DERIVED[name].format(e=prefix)


INSIGHT_FIELDS: tuple[Field, ...] = (
    Field("eventVersion"),
    Field("eventTime", sql_type="timestamp", expression=EVENT_TIME_SQL),
    Field("awsRegion"),
    Field("eventID"),
    Field("eventType"),
    Field("recipientAccountId"),
    Field("sharedEventID"),
    Field("eventCategory"),
    Field("insightDetails", INSIGHT_DETAILS, INSIGHT_DETAILS),
)

# Columns every view adds after the CloudTrail fields: where the event came from, and all of it.
LOCATION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("account", "string"),
    ("region", "string"),
    ("dt", "string"),
    ("source_file", "string"),
    ("raw_json", "string"),
)


def json_schema(fields: tuple[Field, ...]) -> str:
    """The DDL schema string ``from_json`` parses each event with."""
    return ", ".join(f"{f.name} {f.json_type}" for f in fields)


def view_columns(fields: tuple[Field, ...] = EVENT_FIELDS) -> list[tuple[str, str]]:
    """(name, type) of every column of the view, in order (the events view: with the derived
    columns)."""
    derived = DERIVED_FIELDS if fields is EVENT_FIELDS else ()
    return [(f.name, f.sql_type) for f in fields + derived] + list(LOCATION_COLUMNS)


def stored_columns() -> list[tuple[str, str]]:
    """The view's columns a copy of the events stores (the materialized table): the derived
    ones are computed again when read (:func:`with_derived_columns`)."""
    derived = {f.name for f in DERIVED_FIELDS}
    return [(name, kind) for name, kind in view_columns() if name not in derived]


def with_derived_columns(frame: Any) -> Any:
    """A DataFrame of events with the derived columns it lacks (a table that stores only the
    parsed fields, such as ``cloudtrail_parquet``), so rules see the view's columns."""
    from pyspark.sql import functions as F

    for f in DERIVED_FIELDS:
        if f.name not in frame.columns and "userIdentity" in frame.columns:
            frame = frame.withColumn(f.name, F.expr(derived_sql(f.name)))
    return frame
