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


def test_the_admin_wrapper_runs_with_the_services_user_settings_and_data_folder():
    """`python -m bot.admin` run by hand on a systemd install would read ./data; the wrapper runs
    it as the unit runs the bot: same user, same environment file, same DATA_DIR, same Python."""
    unit = unit_settings(UNIT.read_text())
    wrapper = (ROOT / "deploy" / "kz-skin-admin").read_text()
    argv = shlex.split(wrapper.split("exec ", 1)[1].replace("\\\n", " "))
    assert argv[0] == "systemd-run"
    assert f"--uid={unit['User'][0]}" in argv and f"--gid={unit['Group'][0]}" in argv
    assert f"--working-directory={unit['WorkingDirectory'][0]}" in argv
    assert [f"--property=EnvironmentFile={path}" for path in unit["EnvironmentFile"]] == [a for a in argv if a.startswith("--property=EnvironmentFile=")]
    service = shlex.split(unit["ExecStart"][0])  # /usr/bin/env DATA_DIR=… …/python -m bot
    command = argv[next(i for i, a in enumerate(argv) if a == "/usr/bin/env") :]
    assert command[:3] == service[:3], "the same DATA_DIR and Python as the service"
    assert command[3:] == ["-m", "bot.admin", "$@"]
    assert (ROOT / "deploy" / "kz-skin-admin").stat().st_mode & 0o111, "executable"


def test_compose_starts_the_bot_once_postgresql_accepts_connections():
    """The bot migrates at start: started before PostgreSQL is ready it failed and used up its
    few restarts. It now waits for the database's health check (pg_isready)."""
    compose = (ROOT / "compose.yaml").read_text()
    bot = compose.split("\n  bot:\n", 1)[1].split("\n  db:\n", 1)[0]
    db = compose.split("\n  db:\n", 1)[1].split("\n  redis:\n", 1)[0]
    assert re.search(r"depends_on:\n\s+db:\n\s+condition: service_healthy", bot), bot
    assert re.search(r"healthcheck:\n\s+test: \[\"CMD-SHELL\", \"pg_isready[^\]]*\]", db), db
