"""The deployment files read as systemd and Docker read them (#21): the unit's data folder is the
one writable path whatever the copied .env says, and exit 2 (a configuration error) is never
restarted in a loop."""

from __future__ import annotations

import re
import shlex

from .conftest import ROOT

UNIT = ROOT / "deploy" / "kz-skin-bot.service"


def unit_settings(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit, in order (comments and sections skipped)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def env_file(text: str) -> dict[str, str]:
    """An EnvironmentFile as systemd parses it: KEY=VALUE lines, # comments, quotes removed."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = shlex.split(value)[0] if value.strip() else ""
    return out


def effective_environment(unit: dict[str, list[str]], files: dict[str, str]) -> dict[str, str]:
    """systemd's order: Environment=, then EnvironmentFile= (which overrides it, systemd.exec(5)),
    then what ExecStart itself sets through /usr/bin/env."""
    env: dict[str, str] = {}
    for line in unit.get("Environment", []):
        for pair in shlex.split(line):
            key, _, value = pair.partition("=")
            env[key] = value
    for path in unit.get("EnvironmentFile", []):
        env.update(env_file(files[path.lstrip("-")]))
    argv = shlex.split(unit["ExecStart"][0])
    if argv[0] == "/usr/bin/env":
        for arg in argv[1:]:
            if "=" not in arg or arg.startswith("/"):
                break
            key, _, value = arg.partition("=")
            env[key] = value
    return env


def test_the_copied_env_file_cannot_move_the_data_folder_out_of_the_writable_path():
    unit = unit_settings(UNIT.read_text())
    (env_path,) = unit["EnvironmentFile"]
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^DATA_DIR=", example, re.M), "the example sets DATA_DIR, as an operator's copy will"
    for copied in (example, example + "\nDATA_DIR=/opt/kz-skin-bot/data\n"):
        env = effective_environment(unit, {env_path: copied})
        assert env["DATA_DIR"] == "/var/lib/kz-skin-bot"
    assert unit["ReadWritePaths"] == ["/var/lib/kz-skin-bot"] and unit["ProtectSystem"] == ["strict"]
    assert shlex.split(unit["ExecStart"][0])[-2:] == ["-m", "bot"]


def test_a_configuration_error_is_not_restarted_in_a_loop():
    unit = unit_settings(UNIT.read_text())
    assert unit["Restart"] == ["on-failure"] and unit["RestartPreventExitStatus"] == ["2"]
    compose = (ROOT / "compose.yaml").read_text()
    bot = compose.split("\n  bot:\n", 1)[1].split("\n  db:\n", 1)[0]
    (restart,) = re.findall(r"^\s+restart:\s*\"?([^\"\n]+)\"?", bot, re.M)
    policy, _, tries = restart.partition(":")
    assert policy == "on-failure" and tries.isdigit() and int(tries) <= 5, f"bot restart policy {restart!r} loops on exit 2"
