"""The deployment files agree: Procfile, docker-compose.yml and the Dockerfile.

No Docker engine runs the tests, so this checks what can drift apart without
one noticing: the same commands for release/web/worker everywhere, environment
names the settings actually read, the worker's grace period below the kill
timeout, and services that wait for what they need.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# A platform such as Heroku kills a process 30 s after SIGTERM.
PLATFORM_KILL_TIMEOUT = 30
# Read by gunicorn itself: worker count and 0.0.0.0:$PORT.
GUNICORN_ENV = {"WEB_CONCURRENCY", "PORT"}
# What a deployment must set (the rest have safe defaults).
REQUIRED_ENV = {"SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "NTFY_URL"}


def procfile() -> dict[str, str]:
    lines = (BASE_DIR / "Procfile").read_text().splitlines()
    entries = [line.split(":", 1) for line in lines if line.strip()]
    return {name.strip(): command.strip() for name, command in entries}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", (BASE_DIR / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(instruction.upper(), rest) for instruction, rest in pairs]


def interpolate(value: str) -> str:
    """Resolve compose's ``${NAME:-default}`` to its default, as an empty shell would."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def settings_env_names() -> set[str]:
    source = (BASE_DIR / "messagecenter" / "settings.py").read_text()
    return set(re.findall(r"(?:environ\.get|env_[a-z]+)\(\s*\"([A-Z_]+)\"", source))


def test_procfile_declares_release_web_and_worker():
    commands = procfile()

    assert set(commands) == {"release", "web", "worker"}
    assert commands["release"] == "python manage.py migrate --noinput"
    assert commands["web"].startswith("gunicorn messagecenter.wsgi ")
    assert commands["worker"].startswith("python manage.py dbtasks_worker ")


def test_web_takes_its_size_and_port_from_the_platform():
    """No --workers or --bind: gunicorn then reads WEB_CONCURRENCY and PORT."""
    web = shlex.split(procfile()["web"])

    assert not {"--workers", "-w", "--bind", "-b"} & set(web)


def test_worker_grace_is_shorter_than_the_platform_kill():
    command = shlex.split(procfile()["worker"])
    grace = float(command[command.index("--grace") + 1])

    assert grace < PLATFORM_KILL_TIMEOUT


def test_compose_runs_the_procfile_commands(compose):
    services = compose["services"]
    commands = procfile()

    assert services["migrate"]["command"] == commands["release"]
    assert services["web"]["command"] == commands["web"]
    assert services["worker"]["command"] == commands["worker"]


def test_dockerfile_default_command_is_the_web_process():
    (cmd,) = [args for instruction, args in dockerfile() if instruction == "CMD"]

    assert shlex.join(json.loads(cmd)) == procfile()["web"]


def test_compose_worker_gets_its_grace_before_docker_kills_it(compose):
    worker = compose["services"]["worker"]
    command = shlex.split(worker["command"])
    grace = float(command[command.index("--grace") + 1])
    stop_grace = worker["stop_grace_period"]

    assert stop_grace.endswith("s")
    assert grace < float(stop_grace.removesuffix("s"))


def test_app_services_share_one_image_and_environment(compose):
    services = compose["services"]
    apps = [services[name] for name in ("migrate", "web", "worker")]

    assert all(app["build"] == "." for app in apps)
    assert len({app["image"] for app in apps}) == 1
    environments = [app["environment"] for app in apps]
    assert all(env == environments[0] for env in environments)


def test_compose_environment_names_are_read_by_the_settings(compose):
    env = compose["services"]["web"]["environment"]
    known = settings_env_names() | GUNICORN_ENV

    assert set(env) <= known, f"not read anywhere: {set(env) - known}"
    assert set(env) >= REQUIRED_ENV
    assert settings_env_names() >= REQUIRED_ENV
    assert env["DEBUG"] == "0"


def test_compose_urls_point_at_the_compose_services(compose):
    services = compose["services"]
    env = services["web"]["environment"]

    database = urlsplit(env["DATABASE_URL"])
    postgres = services["postgres"]["environment"]
    assert database.scheme in {"postgres", "postgresql"}
    assert database.hostname == "postgres"
    assert (database.username, database.password, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert urlsplit(env["NTFY_URL"]).hostname == "ntfy"
    assert len(interpolate(env["SECRET_KEY"])) >= 50


def test_compose_services_start_in_order(compose):
    services = compose["services"]

    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert "ntfy" in services["worker"]["depends_on"]


def test_compose_runs_a_real_ntfy_server(compose):
    ntfy = compose["services"]["ntfy"]

    assert ntfy["image"].split(":")[0] == "binwiederhier/ntfy"
    assert ntfy["command"] == "serve"
    assert "NTFY_BASE_URL" in ntfy["environment"]


def test_compose_host_ports_are_offset(compose):
    services = compose["services"]

    assert services["postgres"]["ports"] == ["15432:5432"]
    assert services["ntfy"]["ports"] == ["18080:80"]
    assert services["web"]["ports"] == [f"{services['web']['environment']['PORT']}:8000"]


def test_dockerfile_builds_with_uv_as_a_non_root_user():
    instructions = dockerfile()
    python_version = (BASE_DIR / ".python-version").read_text().strip()

    assert instructions[0] == ("FROM", f"python:{python_version}-slim")
    copies = [args for instruction, args in instructions if instruction == "COPY"]
    assert any(args.startswith("--from=ghcr.io/astral-sh/uv:") for args in copies)
    runs = " ".join(args for instruction, args in instructions if instruction == "RUN")
    assert "uv sync --locked --no-dev" in runs
    assert "manage.py collectstatic --noinput" in runs
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users
    assert users[-1] not in {"root", "0"}


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = (BASE_DIR / ".dockerignore").read_text().splitlines()

    for entry in (".venv/", ".git/", "db.sqlite3*", ".ntfy-topic", ".demo-password"):
        assert entry in ignored
