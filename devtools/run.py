"""`make run`: migrate, make sure a local user exists, then run web + worker.

The two processes a deployment runs (see the Procfile) run here side by side in
the foreground, their output prefixed with their name, like `heroku local` or
honcho would. Ctrl-C stops both cleanly; if either dies, the other is stopped
and the exit status is non-zero.

Where notifications go (NTFY_URL):

- NTFY_URL set to a URL: that ntfy topic.
- NTFY_URL=local (`make run-offline`): the repository's stand-in ntfy server
  (tests/ntfy_server.py) on 127.0.0.1; nothing leaves the machine.
- unset: a random, private topic on the public https://ntfy.sh, kept in
  .ntfy-topic so the phone you subscribe stays subscribed across runs.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devtools.supervisor import BASE_DIR
from devtools.supervisor import Child
from devtools.supervisor import Supervisor
from devtools.supervisor import port_in_use

PUBLIC_NTFY = "https://ntfy.sh"
LOCAL_NTFY = "local"
LOCAL_TOPIC = "messagecenter"
USERNAME = "demo"
TOPIC_FILE = ".ntfy-topic"
PASSWORD_FILE = ".demo-password"


@dataclass(frozen=True)
class NtfyTarget:
    """Where the worker delivers, and what to tell the person at the keyboard."""

    url: str
    mode: str  # "env", "public" or "local"
    topic: str = ""


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """Return the stripped content of ``path``, writing ``make()`` there first if missing."""
    if path.exists() and (value := path.read_text().strip()):
        return value
    value = make()
    path.write_text(value + "\n")
    # The topic and the password are secrets of this checkout: owner only.
    path.chmod(0o600)
    return value


def new_topic() -> str:
    """A topic nobody can guess: on ntfy.sh the name is the only protection."""
    return f"messagecenter-{secrets.token_urlsafe(16)}"


def resolve_ntfy(env_value: str | None, state_dir: Path) -> NtfyTarget:
    """Decide where notifications go from NTFY_URL (see the module docstring)."""
    value = (env_value or "").strip()
    if value.lower() == LOCAL_NTFY:
        # The port is only known once the stand-in is started.
        return NtfyTarget(url="", mode="local", topic=LOCAL_TOPIC)
    if value:
        return NtfyTarget(url=value, mode="env")
    topic = read_or_create(state_dir / TOPIC_FILE, new_topic)
    return NtfyTarget(url=f"{PUBLIC_NTFY}/{topic}", mode="public", topic=topic)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def setup_database(*, state_dir: Path) -> str:
    """Migrate, and make sure the local user exists; return its password.

    Runs in this process, before the children start: one Django start-up
    instead of two, and the children never race the migrations.
    """
    # Imported here: settings are read from the environment main() prepares.
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("migrate", interactive=False, verbosity=1)
    password = read_or_create(state_dir / PASSWORD_FILE, lambda: secrets.token_urlsafe(12))
    ensure_user(USERNAME, password)
    # The children open their own connections; do not hold a SQLite handle.
    connections.close_all()
    return password


def ensure_user(username: str, password: str) -> None:
    """Create the local user, or give it ``password`` if it has another one."""
    from django.contrib.auth import get_user_model

    # A superuser, so the admin (/admin/) shows the task rows behind each
    # notification: part of the tour.
    user, created = get_user_model().objects.get_or_create(
        username=username, defaults={"is_staff": True, "is_superuser": True}
    )
    if created or not user.check_password(password):
        user.set_password(password)
        user.save()


def banner(url: str, password: str, ntfy: NtfyTarget) -> str:
    lines = [
        "",
        f"  Message Center is running at {url}",
        f"  Sign in as {USERNAME!r} with password {password!r} (kept in {PASSWORD_FILE}).",
        f"  The admin, with the task rows behind each notification, is at {url}admin/.",
        f"  The operations dashboard (queues, workers, failures) is at {url}ops/.",
    ]
    if ntfy.mode == "public":
        lines += [
            f"  Notifications go to a private topic on ntfy.sh (kept in {TOPIC_FILE};",
            f"  its name is its only key): {ntfy.topic}",
            "  On your phone: install the ntfy app, tap +, and subscribe to that topic.",
            f"  In a browser: {ntfy.url}",
        ]
    elif ntfy.mode == "local":
        server = ntfy.url.rsplit("/", 1)[0]
        lines += [
            f"  Offline: notifications go to the stand-in ntfy server at {ntfy.url};",
            f"  read its inbox at {server}/{LOCAL_TOPIC}/ (what it received, as JSON:",
            f"  {server}/_stand_in/requests).",
        ]
    else:
        lines.append(f"  Notifications go to NTFY_URL={ntfy.url}.")
    lines += ["  Press Ctrl-C to stop the web server and the worker.", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.run", description=__doc__)
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "8000")),
        help="Port of the web server on 127.0.0.1 (default: $PORT or 8000).",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=BASE_DIR,
        help=f"Where {TOPIC_FILE} and {PASSWORD_FILE} live (default: the repository).",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host = "127.0.0.1"
    if port_in_use(host, args.port):
        print(f"Port {args.port} is in use; run with PORT=<another port>.", file=sys.stderr)
        return 1

    # Development settings: DEBUG on, so the development SECRET_KEY and
    # static files served by runserver are used. Children inherit all this.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "messagecenter.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ["PYTHONUNBUFFERED"] = "1"  # child output shows up line by line

    supervisor = Supervisor()
    signal.signal(signal.SIGINT, supervisor.on_signal)
    signal.signal(signal.SIGTERM, supervisor.on_signal)

    ntfy = resolve_ntfy(os.environ.get("NTFY_URL"), args.state_dir)
    after: list[Child] = []
    if ntfy.mode == "local":
        ntfy_port = free_port()
        stand_in = supervisor.start(
            "ntfy",
            [sys.executable, "-m", "tests.ntfy_server", "--port", str(ntfy_port)],
            dict(os.environ),
        )
        after.append(stand_in)
        if not supervisor.wait_until_listening(host, ntfy_port, stand_in):
            supervisor.say("run", "the stand-in ntfy server did not start")
            return supervisor.run([], after) or 1
        ntfy = NtfyTarget(url=f"http://{host}:{ntfy_port}/{LOCAL_TOPIC}", mode="local")
    os.environ["NTFY_URL"] = ntfy.url

    try:
        password = setup_database(state_dir=args.state_dir)
    except BaseException:
        supervisor.run([], after)  # the stand-in must not outlive us
        raise
    if supervisor.signals:  # Ctrl-C during the migrations
        return supervisor.run([], after)
    env = dict(os.environ)
    manage = [sys.executable, "manage.py"]
    web = supervisor.start("web", [*manage, "runserver", f"{host}:{args.port}"], env)
    worker = supervisor.start("worker", [*manage, "dbtasks_worker"], env)
    if supervisor.wait_until_listening(host, args.port, web):
        supervisor.print(banner(f"http://{host}:{args.port}/", password, ntfy))
    return supervisor.run([web, worker], after)


if __name__ == "__main__":
    sys.exit(main())
