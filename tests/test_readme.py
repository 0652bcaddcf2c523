"""The README and docs/ cannot drift: the Quickstart, the CI command, the commands, the
configuration keys, the column reference and the rule pack are checked against the code."""

from __future__ import annotations

import re

from loader.cli import build_parser
from loader.config import FILE_ONLY, known_keys
from loader.tables.cloudtrail_schema import view_columns
from tests.conftest import REPO

README = (REPO / "README.md").read_text()
DOCS = REPO / "docs"


def quickstart() -> list[str]:
    section = README.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in section.strip().splitlines() if line.strip()]


def commands() -> dict:
    return build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]


def test_quickstart_is_two_commands_and_ci_runs_the_test_one():
    install_demo, test = quickstart()
    assert install_demo == "pip install -e . && python -m loader demo"
    assert test == "pip install -e '.[test]' && python -m pytest"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in ci


def test_the_readme_is_a_front_page_and_every_link_resolves():
    assert len(README.splitlines()) <= 300
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert len(pages) >= 10
    for text, origin in [(README, REPO)] + [(p.read_text(), DOCS) for p in DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+\.(?:md|png))(?:#[^)]*)?\)", text):
            if not target.startswith("http"):
                assert (origin / target).exists(), target
    for page in pages:  # every page is reachable from the front page
        assert f"(docs/{page})" in README, page


def test_every_view_column_is_documented_with_its_type():
    text = (DOCS / "tables.md").read_text()
    section = text.split("### `security.cloudtrail`", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"^\| `(\w+)` \| ([a-z ]+?) \|", section, re.M))
    for name, sql_type in view_columns():
        kind = sql_type.split("<")[0].replace("array", "array of struct")
        assert documented.get(name) == kind, name
    assert len(documented) == len(view_columns())


def test_every_command_is_in_the_readme_and_every_key_in_the_configuration_page():
    for name in commands():
        assert f"| `{name}" in README, name
    text = (DOCS / "configuration.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+)$", text, re.M))
    assert set(rows) == set(known_keys())
    for key in known_keys():
        if key in FILE_ONLY:
            continue
        flag, where = (cell.strip() for cell in rows[key].split("|")[:2])
        assert flag == f"`--{key.replace('_', '-')}`", key
        having = sorted(n for n, c in commands().items() if any(a.dest == key for a in c._actions))
        assert where == ("every command" if len(having) == len(commands()) else ", ".join(having))


def test_the_geoip_flags_are_listed_for_every_command_that_takes_them():
    line = " ".join(README.split("GeoIP/Tor flags (", 1)[1].split("\n\n", 1)[0].split())
    listed = re.findall(r"`([a-z-]+)`", line.split("are taken by", 1)[1].split(";", 1)[0])
    having = [
        n for n, c in commands().items() if any(a.dest == "geoip_city_db" for a in c._actions)
    ]
    assert sorted(listed) == sorted(having)


def test_the_rules_page_lists_every_bundled_rule_with_its_kind_and_severity():
    from loader.rules.validate import BUNDLED, load_rules

    rules, _ = load_rules([str(p) for p in BUNDLED])
    text = (DOCS / "rules.md").read_text()
    for rule in rules:
        row = f"| `{rule.name}` | {rule.kind}"
        assert row in text, f"docs/rules.md's rule pack table lacks {rule.name}"
        line = next(line for line in text.splitlines() if line.startswith(row))
        assert f"| {rule.severity} |" in line, rule.name


def test_the_configuration_example_is_a_valid_config_file():
    from loader.config import parse_config

    text = (DOCS / "configuration.md").read_text().split("```toml", 1)[1].split("```", 1)[0]
    data = parse_config(text, "docs/configuration.md")
    assert data["rules"] == ["sql", "/etc/tsa/our-rules"] and data["conf"]
