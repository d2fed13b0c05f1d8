"""The Procfile's web process serves what production needs, under gunicorn.

collectstatic writes hashed, compressed files; WhiteNoise serves them with a
far-future Cache-Control and the pre-compressed encoding; the security headers
(HSTS, Django 6's Content-Security-Policy) and secure cookies are on. Runs the
Procfile's `web` command as is, with production settings (DEBUG off).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.live import BASE_DIR
from tests.live import Service
from tests.live import free_port
from tests.live import manage
from tests.live import production_env
from tests.live import wait_for_http
from tests.live import web_command

pytestmark = pytest.mark.process

# A proxy terminating TLS in front of gunicorn, as on a platform.
PROXY_HEADERS = {"Host": "example.com", "X-Forwarded-Proto": "https"}


@dataclass(frozen=True)
class Server:
    url: str
    static_root: Path
    log: Path


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    """Collect static files into a fresh STATIC_ROOT, then start the web process."""
    tmp = tmp_path_factory.mktemp("static")
    port = free_port()
    env = production_env(
        STATIC_ROOT=str(tmp / "staticfiles"),
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        ALLOWED_HOSTS="example.com",
        WEB_CONCURRENCY="1",
        # The Procfile relies on $PORT (0.0.0.0); a test binds loopback only.
        GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}",
    )
    collected = manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    # The Procfile's web line as it is.
    server = Service("gunicorn", web_command(), env, tmp / "gunicorn.log").start()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", server)
        yield Server(f"http://127.0.0.1:{port}", tmp / "staticfiles", server.log)
    finally:
        server.stop()


def hashed_name(static_root: Path, name: str) -> str:
    manifest = json.loads((static_root / "staticfiles.json").read_text())
    return manifest["paths"][name]


@pytest.mark.parametrize("encoding", ["gzip"])
def test_hashed_file_is_served_compressed_and_cached_forever(gunicorn, encoding):
    base_url, static_root = gunicorn.url, gunicorn.static_root
    name = hashed_name(static_root, "django_htmx/htmx-2.min.js")
    assert name != "django_htmx/htmx-2.min.js"  # the content hash is in the name

    response = httpx.get(
        f"{base_url}/static/{name}", headers={**PROXY_HEADERS, "Accept-Encoding": encoding}
    )

    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == encoding
    cache_control = response.headers["Cache-Control"]
    assert "immutable" in cache_control
    assert "max-age=315360000" in cache_control
    assert response.text.startswith((static_root / "django_htmx/htmx-2.min.js").read_text()[:200])


def test_security_headers_on_every_response(gunicorn):
    base_url, static_root = gunicorn.url, gunicorn.static_root
    name = hashed_name(static_root, "django_htmx/htmx-2.min.js")

    response = httpx.get(f"{base_url}/static/{name}", headers=PROXY_HEADERS)

    assert "max-age=31536000" in response.headers["Strict-Transport-Security"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_carry_csp_and_secure_cookies(gunicorn):
    base_url = gunicorn.url

    response = httpx.get(f"{base_url}/accounts/login/", headers=PROXY_HEADERS)

    assert response.status_code == 200, gunicorn.log.read_text()
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("csrftoken=")
    assert "Secure" in cookie


def test_plain_http_is_redirected_to_https(gunicorn):
    base_url = gunicorn.url

    response = httpx.get(f"{base_url}/accounts/login/", headers={"Host": "example.com"})

    assert response.status_code == 301
    assert response.headers["Location"] == "https://example.com/accounts/login/"


def test_static_root_is_not_the_repository_default(gunicorn):
    """STATIC_ROOT comes from the environment, so this test wrote to a temp dir."""
    static_root = gunicorn.static_root

    assert (static_root / "staticfiles.json").exists()
    assert os.path.commonpath([static_root, BASE_DIR]) != str(BASE_DIR)
