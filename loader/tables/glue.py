"""`create-glue-table`: the CloudTrail and S3 access log tables in the AWS Glue Data Catalog, for
Athena (and for Spark on EMR with Glue as its metastore), through boto3's Glue API.

- ``cloudtrail_logs``: the table Athena's documentation gives for CloudTrail (the Hive JSON
  SerDe with CloudTrail's input format, ``useridentity`` typed, ``requestparameters`` and
  ``responseelements`` as JSON text), partitioned by ``account``, ``region`` and ``dt``
  (``yyyy/MM/dd``) with partition projection, so no partition ever needs adding.
- ``cloudtrail``: an Athena view over it with the columns the rules read, typed as in Spark's
  ``cloudtrail`` view (``eventtime`` a timestamp, ``readonly`` a boolean, ``source_file``).
- ``s3_access_logs``: S3 server access logs with the RegexSerDe over every documented field
  (the same expression as the Hive table).

Idempotent: a table that matches is left alone; one that differs is updated (parameters
someone else added are kept); ``--dry-run`` prints the equivalent Athena DDL instead.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from loader.errors import LoaderError
from loader.s3util import split_s3
from loader.sql import check_identifier
from loader.tables.cloudtrail_schema import derived_sql

CLOUDTRAIL_TABLE = "cloudtrail_logs"
EVENTS_VIEW = "cloudtrail"
S3_ACCESS_TABLE = "s3_access_logs"
JSON_SERDE = "org.apache.hive.hcatalog.data.JsonSerDe"
CLOUDTRAIL_INPUT = "com.amazon.emr.cloudtrail.CloudTrailInputFormat"
TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
REGEX_SERDE = "org.apache.hadoop.hive.serde2.RegexSerDe"
FIRST_DAY = "2013/11/01"  # CloudTrail's launch: the projection's default start

# The columns of Athena's CloudTrail table (its documentation, partition projection example).
CLOUDTRAIL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("eventversion", "string"),
    (
        "useridentity",
        "struct<type:string,principalid:string,arn:string,accountid:string,invokedby:string,"
        "accesskeyid:string,username:string,"
        "onbehalfof:struct<userid:string,identitystorearn:string>,"
        "sessioncontext:struct<attributes:struct<mfaauthenticated:string,creationdate:string>,"
        "sessionissuer:struct<type:string,principalid:string,arn:string,accountid:string,"
        "username:string>,ec2roledelivery:string,"
        "webidfederationdata:struct<federatedprovider:string,attributes:map<string,string>>>>",
    ),
    ("eventtime", "string"),
    ("eventsource", "string"),
    ("eventname", "string"),
    ("awsregion", "string"),
    ("sourceipaddress", "string"),
    ("useragent", "string"),
    ("errorcode", "string"),
    ("errormessage", "string"),
    ("requestparameters", "string"),
    ("responseelements", "string"),
    ("additionaleventdata", "string"),
    ("requestid", "string"),
    ("eventid", "string"),
    ("readonly", "string"),
    ("resources", "array<struct<arn:string,accountid:string,type:string>>"),
    ("eventtype", "string"),
    ("apiversion", "string"),
    ("recipientaccountid", "string"),
    ("serviceeventdetails", "string"),
    ("sharedeventid", "string"),
    ("vpcendpointid", "string"),
    ("vpcendpointaccountid", "string"),
    ("eventcategory", "string"),
    (
        "addendum",
        "struct<reason:string,updatedfields:string,originalrequestid:string,"
        "originaleventid:string>",
    ),
    ("sessioncredentialfromconsole", "string"),
    ("edgedevicedetails", "string"),
    ("tlsdetails", "struct<tlsversion:string,ciphersuite:string,clientprovidedhostheader:string>"),
)
PARTITION_KEYS = (("account", "string"), ("region", "string"), ("dt", "string"))

# The Athena view: Spark's `cloudtrail` view's columns and types, over the table.
_VIEW_EXPRESSIONS = {
    "eventtime": "CAST(from_iso8601_timestamp(eventtime) AS timestamp)",
    "readonly": "TRY_CAST(readonly AS boolean)",
    "sessioncredentialfromconsole": "TRY_CAST(sessioncredentialfromconsole AS boolean)",
}
_VIEW_TYPES = {"eventtime": "timestamp", "readonly": "boolean",
               "sessioncredentialfromconsole": "boolean"}  # fmt: skip


@dataclass
class GlueReport:
    database: str
    actions: list[str] = field(default_factory=list)

    def render(self) -> str:
        return "\n".join(f"{self.database}.{action}" for action in self.actions)


@dataclass
class CloudTrailLocation:
    """Where the logs are, and what the projection enumerates."""

    root: str  # s3://bucket/[prefix/]AWSLogs[/o-org]
    accounts: list[str]
    regions: list[str]
    first_day: str = FIRST_DAY

    @property
    def template(self) -> str:
        return f"{self.root}/${{account}}/CloudTrail/${{region}}/${{dt}}"


def locate(source: str, client: Any = None) -> CloudTrailLocation:
    """The AWSLogs root under ``source``, and its accounts, regions and first year (three small
    delimiter listings per account: no object is read)."""
    from loader.s3util import s3_client

    bucket, prefix = split_s3(source)
    prefix = prefix.strip("/")
    match = re.match(r"^(.*?AWSLogs(?:/o-[a-z0-9]{10,32})?)(?:/|$)", prefix)
    if match is None:
        raise LoaderError(
            f"{source}: give the AWSLogs folder of a trail, s3://bucket/[prefix/]AWSLogs "
            "(or AWSLogs/<org-id> for an organization trail)"
        )
    root_prefix = match.group(1)
    client = client or s3_client()
    accounts = [p for p in _folders(client, bucket, root_prefix) if re.fullmatch(r"\d{12}", p)]
    if not accounts:
        raise LoaderError(f"s3://{bucket}/{root_prefix}/: no account folders (<12 digits>/)")
    regions: set[str] = set()
    years: set[str] = set()
    for account in accounts:
        for region in _folders(client, bucket, f"{root_prefix}/{account}/CloudTrail"):
            regions.add(region)
            years.update(_folders(client, bucket, f"{root_prefix}/{account}/CloudTrail/{region}"))
    if not regions:
        raise LoaderError(f"s3://{bucket}/{root_prefix}/: no CloudTrail/<region>/ folders")
    first_year = min((y for y in years if re.fullmatch(r"\d{4}", y)), default="2013")
    first_day = max(f"{first_year}/01/01", FIRST_DAY)
    return CloudTrailLocation(f"s3://{bucket}/{root_prefix}", accounts, sorted(regions), first_day)


def _folders(client: Any, bucket: str, prefix: str) -> list[str]:
    from botocore.exceptions import BotoCoreError, ClientError

    names = []
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{prefix}/", Delimiter="/"
        )
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                names.append(common["Prefix"][len(prefix) + 1 :].strip("/"))
    except (BotoCoreError, ClientError) as exc:
        raise LoaderError(f"s3://{bucket}/{prefix}/: cannot list: {exc}") from exc
    return names


# --- the Glue TableInputs ---------------------------------------------------------------------


def _columns(pairs: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"Name": name, "Type": kind} for name, kind in pairs]


def cloudtrail_table(location: CloudTrailLocation) -> dict[str, Any]:
    return {
        "Name": CLOUDTRAIL_TABLE,
        "Description": "CloudTrail log files (Athena's table, with partition projection)",
        "TableType": "EXTERNAL_TABLE",
        "PartitionKeys": _columns(PARTITION_KEYS),
        "Parameters": {
            "EXTERNAL": "TRUE",
            "classification": "cloudtrail",
            "projection.enabled": "true",
            "projection.account.type": "enum",
            "projection.account.values": ",".join(location.accounts),
            "projection.region.type": "enum",
            "projection.region.values": ",".join(location.regions),
            "projection.dt.type": "date",
            "projection.dt.format": "yyyy/MM/dd",
            "projection.dt.range": f"{location.first_day},NOW",
            "projection.dt.interval": "1",
            "projection.dt.interval.unit": "DAYS",
            "storage.location.template": location.template,
        },
        "StorageDescriptor": {
            "Columns": _columns(CLOUDTRAIL_COLUMNS),
            "Location": location.root + "/",
            "InputFormat": CLOUDTRAIL_INPUT,
            "OutputFormat": TEXT_OUTPUT,
            "SerdeInfo": {"SerializationLibrary": JSON_SERDE, "Parameters": {}},
        },
    }


# the view's derived column, as the Spark view computes it
PRINCIPAL_ATHENA = f"{derived_sql('principal').lower()} AS principal"


def events_view_sql(database: str) -> str:
    """The Athena (Trino) query of the ``cloudtrail`` view."""
    select = [
        f"{_VIEW_EXPRESSIONS[name]} AS {name}" if name in _VIEW_EXPRESSIONS else name
        for name, _ in CLOUDTRAIL_COLUMNS
    ]
    select += [PRINCIPAL_ATHENA, "account", "region", "dt", '"$path" AS source_file']
    return (
        "SELECT\n  " + ",\n  ".join(select) + f"\nFROM {database}.{CLOUDTRAIL_TABLE}\n"
        "WHERE eventtype IS NULL OR eventtype <> 'AwsCloudTrailInsight'"
    )


def _trino_type(hive: str) -> str:
    """A Hive type string as Trino writes it (what an Athena view records for its columns)."""
    import sqlglot

    return sqlglot.exp.DataType.build(hive, dialect="hive").sql("trino").lower()


def view_columns() -> list[tuple[str, str]]:
    columns = [(name, _VIEW_TYPES.get(name, kind)) for name, kind in CLOUDTRAIL_COLUMNS]
    return columns + [("principal", "string"), ("account", "string"), ("region", "string"),
                      ("dt", "string"), ("source_file", "string")]  # fmt: skip


def events_view(database: str) -> dict[str, Any]:
    """An Athena view as Athena stores it in Glue: the Trino query, base64 in a comment."""
    sql = events_view_sql(database)
    columns = view_columns()
    presto = {
        "originalSql": sql,
        "catalog": "awsdatacatalog",
        "schema": database,
        "columns": [{"name": name, "type": _trino_type(kind)} for name, kind in columns],
    }
    encoded = base64.b64encode(json.dumps(presto, sort_keys=True).encode()).decode()
    return {
        "Name": EVENTS_VIEW,
        "Description": "CloudTrail events, typed as Spark's cloudtrail view (for Athena)",
        "TableType": "VIRTUAL_VIEW",
        "Parameters": {"presto_view": "true", "comment": "Presto View"},
        "ViewOriginalText": f"/* Presto View: {encoded} */",
        "ViewExpandedText": "/* Presto View */",
        "StorageDescriptor": {"Columns": _columns(columns), "SerdeInfo": {}},
    }


def s3_access_table(source: str) -> dict[str, Any]:
    from loader.tables.s3_access_ddl import EXTRA, FIELDS, REGEX

    columns = [(f.name, "string") for f in FIELDS] + [(EXTRA, "string")]
    return {
        "Name": S3_ACCESS_TABLE,
        "Description": "S3 server access log lines, every documented field (RegexSerDe)",
        "TableType": "EXTERNAL_TABLE",
        "PartitionKeys": [],
        "Parameters": {"EXTERNAL": "TRUE", "classification": "s3-access-logs"},
        "StorageDescriptor": {
            "Columns": _columns(columns),
            "Location": source.rstrip("/") + "/",
            "InputFormat": TEXT_INPUT,
            "OutputFormat": TEXT_OUTPUT,
            "SerdeInfo": {
                "SerializationLibrary": REGEX_SERDE,
                "Parameters": {"input.regex": REGEX},
            },
        },
    }


# --- applying them ----------------------------------------------------------------------------


def _differs(existing: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The top-level parts of ``wanted`` that ``existing`` does not match."""
    changed = []
    for key, value in wanted.items():
        if key == "Parameters":
            have = existing.get("Parameters", {})
            if any(have.get(k) != v for k, v in value.items()):
                changed.append(key)
        elif key == "StorageDescriptor":
            have = existing.get(key, {})
            if any(_normal(have.get(k)) != _normal(v) for k, v in value.items()):
                changed.append(key)
        elif _normal(existing.get(key)) != _normal(value):
            changed.append(key)
    return changed


def _normal(value: Any) -> Any:
    """Glue may return empty parts it was given, or omit them: compare them as equal."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v not in ({}, [], None, "")}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def apply_tables(database: str, tables: list[dict[str, Any]], client: Any = None) -> GlueReport:
    """Create the database and tables, update what differs, leave the rest."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    database = check_identifier(database)
    glue = client or boto3.client("glue")
    report = GlueReport(database)
    try:
        try:
            glue.get_database(Name=database)
        except glue.exceptions.EntityNotFoundException:
            glue.create_database(DatabaseInput={"Name": database})
            report.actions.append("(database) created")
        for table in tables:
            try:
                existing = glue.get_table(DatabaseName=database, Name=table["Name"])["Table"]
            except glue.exceptions.EntityNotFoundException:
                glue.create_table(DatabaseName=database, TableInput=table)
                report.actions.append(f"{table['Name']}: created")
                continue
            changed = _differs(existing, table)
            if not changed:
                report.actions.append(f"{table['Name']}: unchanged")
                continue
            merged = dict(table)
            merged["Parameters"] = {**existing.get("Parameters", {}), **table["Parameters"]}
            glue.update_table(DatabaseName=database, TableInput=merged)
            report.actions.append(f"{table['Name']}: updated ({', '.join(changed)})")
    except (BotoCoreError, ClientError) as exc:
        raise LoaderError(f"Glue database {database}: {exc}") from exc
    return report


# --- the equivalent Athena DDL ----------------------------------------------------------------


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def athena_ddl(database: str, table: dict[str, Any]) -> str:
    """What Athena would be given to create ``table`` (a Glue TableInput)."""
    if table["TableType"] == "VIRTUAL_VIEW":
        encoded = table["ViewOriginalText"].split("Presto View: ", 1)[1].rsplit(" */", 1)[0]
        sql = json.loads(base64.b64decode(encoded))["originalSql"]
        return f"CREATE OR REPLACE VIEW {database}.{table['Name']} AS\n{sql}"
    storage = table["StorageDescriptor"]
    columns = ",\n  ".join(
        f"{c['Name']} {c['Type'].replace(':', ': ').replace(',', ', ')}" for c in storage["Columns"]
    )
    ddl = f"CREATE EXTERNAL TABLE IF NOT EXISTS {database}.{table['Name']} (\n  {columns}\n)"
    if table.get("PartitionKeys"):
        keys = ", ".join(f"{c['Name']} {c['Type']}" for c in table["PartitionKeys"])
        ddl += f"\nPARTITIONED BY ({keys})"
    serde = storage["SerdeInfo"]
    ddl += f"\nROW FORMAT SERDE {_quote(serde['SerializationLibrary'])}"
    if serde.get("Parameters"):
        props = ", ".join(f"{_quote(k)}={_quote(v)}" for k, v in serde["Parameters"].items())
        ddl += f"\nWITH SERDEPROPERTIES ({props})"
    ddl += (
        f"\nSTORED AS INPUTFORMAT {_quote(storage['InputFormat'])}"
        f"\nOUTPUTFORMAT {_quote(storage['OutputFormat'])}"
        f"\nLOCATION {_quote(storage['Location'])}"
    )
    props = [(k, v) for k, v in table["Parameters"].items() if k != "EXTERNAL"]
    ddl += "\nTBLPROPERTIES (\n  " + ",\n  ".join(f"{_quote(k)}={_quote(v)}" for k, v in props)
    return ddl + "\n)"


def glue_tables(kind: str, source: str, database: str) -> list[dict[str, Any]]:
    if kind == "s3-access-logs":
        return [s3_access_table(source)]
    return [cloudtrail_table(locate(source)), events_view(check_identifier(database))]
