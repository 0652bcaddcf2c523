"""`export --dialect athena`: every bundled rule transpiled to Trino SQL that sqlglot reads back
without falling back to an opaque command; Spark-only constructs rewritten, GeoIP functions
joined against the enrichment table, the time-aware Tor rule reported as not portable."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from loader.cli import main
from loader.rules.validate import load_valid_rules

SPARK_ONLY = ("get_json_object", "from_json", "explode", "lateral view", "geoip_", "is_tor_exit")


def test_every_rule_exports_to_trino_or_is_reported(tmp_path, capsys):
    out = tmp_path / "athena"
    assert main(["export", "--dialect", "athena", "--out", str(out), "--every", "15m"]) == 0
    report = capsys.readouterr().out
    rules = {rule.name: rule for rule in load_valid_rules(None)}
    written = {p.stem: p.read_text() for p in out.glob("*.sql")}
    assert set(written) == set(rules) - {"tor_exit_node_activity"}
    assert "NOT PORTABLE tor_exit_node_activity: is_tor_exit_at needs the Tor list" in report
    assert f"exported {len(written)} of {len(rules)} rules for Athena" in report
    for name, sql in written.items():
        parsed = sqlglot.parse_one(sql, read="trino", error_level=ErrorLevel.RAISE)
        assert isinstance(parsed, exp.Select), name  # a query, not an opaque command
        lowered = "\n".join(line for line in sql.splitlines() if not line.startswith("--")).lower()
        assert not [f for f in SPARK_ONLY if f in lowered], name
        assert "security.cloudtrail" in sql and "INTERVAL '900' SECOND" in sql, name
        tables = {t.sql("trino") for t in parsed.find_all(exp.Table)}
        assert "cloudtrail" not in tables, name  # always the database's view
    # Spark's exists(array, x -> ...) keeps its lambda; map keys never fail in Trino
    assert "ANY_MATCH(" in written["ami_made_public"] and "item ->" in written["ami_made_public"]
    assert "ELEMENT_AT(item, 'group')" in written["ami_made_public"]
    assert "TRY_CAST(JSON_EXTRACT(requestParameters" in written["lambda_layer_added"]
    assert "CROSS JOIN UNNEST" in written["secrets_bulk_read"]
    # GeoIP functions: a join against the exported enrichment table
    country = written["new_country_for_principal"]
    assert "LEFT JOIN security.ip_enrichment AS __ip1" in country
    assert "__ip1.country AS country" in country
    # a profile is a first-seen query over its history window, after its learning period
    assert "INTERVAL '15552000' SECOND" in country  # expire: 180 days
    assert "learning_from + INTERVAL '1209600' SECOND" in country  # learning: 14 days
    # rules name the view's derived principal column; Athena's view has it too (test_glue)
    assert "principal" in written["iam_access_key_created"]
    burst = written["unauthorized_api_calls_burst"]
    assert "HAVING" in burst and "COUNT(*) >=" in burst.upper()


def test_export_without_out_prints_the_queries(capsys, tmp_path):
    rule = tmp_path / "root_seen.sql"
    rule.write_text(
        "/*\nname: root_seen\nkind: alert\ndescription: root\nseverity: high\n*/\n"
        "SELECT eventID, eventTime, get_json_object(requestParameters, '$.userName') AS u\n"
        "FROM cloudtrail WHERE userIdentity.type = 'Root'\n"
    )
    assert main(["export", "--rules", str(rule), "--database", "sec"]) == 0
    captured = capsys.readouterr()
    assert "JSON_EXTRACT_SCALAR(requestParameters, '$.userName') AS u" in captured.out
    assert "FROM sec.cloudtrail" in captured.out
    assert "exported 1 of 1 rules for Athena" in captured.err
