"""The README cannot drift: its Quickstart, CI command, commands and column reference are
checked against the code."""

from __future__ import annotations

import re

from loader.cli import build_parser
from loader.config import known_keys
from loader.tables.cloudtrail_schema import view_columns
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def quickstart() -> list[str]:
    section = README.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in section.strip().splitlines() if line.strip()]


def test_quickstart_is_two_commands_and_ci_runs_the_test_one():
    install_demo, test = quickstart()
    assert install_demo == "pip install -e . && python -m loader demo"
    assert test == "pip install -e '.[test]' && python -m pytest"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in ci


def test_every_view_column_is_documented_with_its_type():
    section = README.split("### `security.cloudtrail`", 1)[1].split("## ", 1)[0]
    documented = dict(re.findall(r"^\| `(\w+)` \| ([a-z ]+?) \|", section, re.M))
    for name, sql_type in view_columns():
        kind = sql_type.split("<")[0].replace("array", "array of struct")
        assert documented.get(name) == kind, name
    assert len(documented) == len(view_columns())


def test_every_command_and_config_key_is_documented():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in commands:
        assert f"`{name}" in README, name
    for key in known_keys():
        assert f"| `{key}` |" in README, key


def test_readme_lists_every_bundled_rule_with_its_kind_and_severity():
    from loader.rules.validate import BUNDLED, load_rules

    rules, _ = load_rules([str(p) for p in BUNDLED])
    text = README
    for rule in rules:
        row = f"| `{rule.name}` | {rule.kind}"
        assert row in text, f"README's rule pack table lacks {rule.name}"
        line = next(line for line in text.splitlines() if line.startswith(row))
        assert f"| {rule.values['severity']} |" in line, rule.name
