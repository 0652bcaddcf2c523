"""Every setting is read the same way by every command: the flag, else the config file's key of
the same name, else the default. Fast tier: parsers and settings only, no JVM."""

from __future__ import annotations

from dataclasses import fields

import pytest

from loader.cli import build_parser, main
from loader.config import FILE_ONLY, Settings, choices, flag_only_keys, known_keys, resolve
from loader.errors import ConfigError

SPECIAL = {"conf", "debug"}  # --conf pairs merge into the [conf] table; --debug is everywhere


def commands() -> dict:
    parser = build_parser()
    return parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]


def options_of(name: str) -> dict[str, object]:
    """The settings a command has a flag for: key -> argparse action."""
    keys = {f.name for f in fields(Settings)}
    return {a.dest: a for a in commands()[name]._actions if a.dest in keys}


def sample(key: str) -> object:
    """A value for KEY unlike its default, of its type."""
    kind = str(next(f.type for f in fields(Settings) if f.name == key))
    allowed = choices(key)
    if allowed:
        return allowed[-1] if allowed[-1] != getattr(Settings(), key) else allowed[0]
    if kind.startswith("bool"):
        return True
    if kind.startswith("int"):
        return getattr(Settings(), key) * 3 + 1 if getattr(Settings(), key) else 5
    if kind.startswith("float"):
        return 2.5
    if kind.startswith("list"):
        return ["one", "two"]
    return f"{key}-from-here"


def toml(key: str, value: object) -> str:
    if isinstance(value, bool):
        return f"{key} = {'true' if value else 'false'}\n"
    if isinstance(value, list):
        return f"{key} = [{', '.join(repr(v) for v in value)}]\n".replace("'", '"')
    if isinstance(value, str):
        return f'{key} = "{value}"\n'
    return f"{key} = {value}\n"


def argv(action, value: object) -> list[str]:  # noqa: ANN001 - an argparse action
    flag = action.option_strings[0]
    if value is True:
        return [flag]
    if isinstance(value, list):
        return [flag, *value]
    return [flag, str(value)]


CASES = [
    (command, key)
    for command in sorted(commands())
    for key in sorted(options_of(command))
    if key in known_keys() and key not in SPECIAL
]


def settings_for(args: list[str], config: str | None = None) -> Settings:
    parsed = build_parser().parse_args(args)
    flags = {k: v for k, v in vars(parsed).items() if k not in ("handler", "command", "config")}
    return resolve(config, flags)


@pytest.mark.parametrize("command, key", CASES)
def test_every_key_works_from_the_flag_and_from_the_file(command, key, tmp_path):
    value = sample(key)
    if choices(key) != (getattr(Settings(), key),):  # a one-choice key cannot differ
        assert getattr(Settings(), key) != value
    action = options_of(command)[key]
    assert action.default is None, f"{command} --{key}: a default of the flag hides the file's"
    assert getattr(settings_for([command, *argv(action, value)]), key) == value
    config = tmp_path / "tsa.toml"
    config.write_text(toml(key, value))
    assert getattr(settings_for([command], str(config)), key) == value
    if not isinstance(value, bool):  # a switch given on the command line cannot be undone
        config.write_text(toml(key, sample_other(key, value)))
        assert getattr(settings_for([command, *argv(action, value)], str(config)), key) == value


def sample_other(key: str, value: object) -> object:
    if isinstance(value, list):
        return ["three"]
    if isinstance(value, (int, float)):
        return value + 1
    allowed = choices(key)
    if allowed:
        return getattr(Settings(), key)
    return f"{value}-file"


def test_every_setting_has_a_flag_somewhere_and_every_flag_a_setting():
    flagged = {key for command in commands() for key in options_of(command)}
    settable = {f.name for f in fields(Settings)} - set(FILE_ONLY)
    assert settable - flagged == set()
    assert len(CASES) > 80  # every command was looked at
    for command in commands():  # nothing a command reads lives outside Settings
        for action in commands()[command]._actions:
            if action.dest not in ("help", "config"):
                assert action.dest in settable, f"{command}: {action.option_strings}"


def test_a_flag_only_setting_in_the_file_is_refused(tmp_path):
    config = tmp_path / "tsa.toml"
    config.write_text('since = "2024-03-01"\nexplain = true\n')
    with pytest.raises(ConfigError) as err:
        resolve(str(config), {})
    assert "'since' is about one run: give it as a flag (--since)" in str(err.value)
    assert "'explain' is about one run" in str(err.value)
    assert set(flag_only_keys()) >= {"since", "until", "explain", "paths", "once"}


def test_list_float_and_choice_keys_are_checked(tmp_path):
    config = tmp_path / "tsa.toml"
    config.write_text('rules = "sql"\ngap_factor = "x"\nkind = "vpc-flow"\nregions = [1]\n')
    with pytest.raises(ConfigError) as err:
        resolve(str(config), {})
    message = str(err.value)
    assert "'rules' must be an array, got str 'sql'" in message
    assert "'gap_factor' must be a number, got str 'x'" in message
    assert "'kind' must be one of cloudtrail, s3-access-logs, got 'vpc-flow'" in message
    assert "'regions' must be an array of strings, got [1]" in message
    config.write_text("gap_factor = 4\n")
    assert resolve(str(config), {}).gap_factor == 4.0


def test_the_commands_act_on_keys_from_the_file(tmp_path, capsys):
    """The handlers read the resolved settings: a key from the file changes what they do (each
    refused before any JVM starts, so the error names the value that came from the file)."""
    config = tmp_path / "tsa.toml"
    config.write_text(f'source = "{tmp_path / "nowhere"}"\n')
    for command in ("create-glue-table", "sync"):
        assert main([command, "--config", str(config)]) == 1
        assert f"--source {tmp_path / 'nowhere'}: expected" in capsys.readouterr().err
    assert main(["create-hive-table", "--config", str(config)]) == 1
    assert "nowhere: no such directory" in capsys.readouterr().err

    config.write_text('sqs_queue_url = "https://q"\nhistory_table = "security.x"\n')
    assert (
        main(["run", "--config", str(config), "--rules", "sql/alerts/root_console_login.sql"]) == 1
    )
    assert "--history-table works with --source" in capsys.readouterr().err

    config.write_text(f'rules = ["{tmp_path / "no-rules"}"]\n')
    assert main(["export", "--config", str(config)]) == 1
    assert "no-rules" in capsys.readouterr().err

    config.write_text('dest = "/tmp/x"\n')
    assert main(["sync", "--config", str(config)]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: sync needs --source (or 'source' in the config file)"
    )
