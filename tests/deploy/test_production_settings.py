"""Production settings: with DEBUG off and the documented environment, Django's
deployment checklist (`manage.py check --deploy`) has nothing to say.

The settings are read in a subprocess: they are computed from the environment
once, at import, and this test process runs with tests.settings.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.live import manage
from tests.live import production_env
from tests.live import python


def test_check_deploy_reports_nothing():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("name", "check_id"),
    [
        ("SECRET_KEY", "security.W009"),
        ("ALLOWED_HOSTS", "security.W020"),
        ("NTFY_URL", "messagecenter.E001"),
        ("CHANNEL_TOKEN_KEY", "messagecenter.W001"),
    ],
)
def test_check_deploy_names_a_missing_variable(name, check_id):
    """The check is not vacuous: drop a documented variable and it fails."""
    env = production_env()
    del env[name]

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode != 0
    assert f"({check_id})" in result.stderr


def read_settings(env: dict[str, str], *names: str) -> dict[str, Any]:
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        f"print(json.dumps({{n: getattr(settings, n) for n in {list(names)!r}}}, default=str))"
    )
    result = python("-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_production_defaults_are_secure():
    values = read_settings(
        production_env(),
        "DEBUG",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_CSP",
        "STORAGES",
    )

    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_CSP"]["default-src"] == ["'self'"]
    assert values["STORAGES"]["staticfiles"]["BACKEND"] == (
        "whitenoise.storage.CompressedManifestStaticFilesStorage"
    )


def test_local_http_stack_can_turn_off_https_only_settings():
    """docker-compose.yml serves plain http on localhost; these switches allow it."""
    env = production_env(SECURE_SSL_REDIRECT="0", SECURE_COOKIES="0", SECURE_HSTS_SECONDS="0")

    values = read_settings(
        env, "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT"
    )

    assert values == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_SSL_REDIRECT": False,
    }


def test_logs_go_to_stdout():
    values = read_settings(production_env(), "LOGGING")

    handlers = values["LOGGING"]["handlers"]
    assert {handler["stream"] for handler in handlers.values()} == {"ext://sys.stdout"}


def test_x_forwarded_proto_is_believed_only_when_a_proxy_is_declared():
    # Django's default (None) when not declared: a client cannot claim https.
    assert read_settings(production_env(), "SECURE_PROXY_SSL_HEADER") == {
        "SECURE_PROXY_SSL_HEADER": None
    }
    behind_proxy = production_env(TRUST_X_FORWARDED_PROTO="1")
    assert read_settings(behind_proxy, "SECURE_PROXY_SSL_HEADER") == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]
    }


def test_secret_key_fallbacks_for_a_rotation():
    assert read_settings(production_env(), "SECRET_KEY_FALLBACKS") == {"SECRET_KEY_FALLBACKS": []}
    rotating = production_env(SECRET_KEY_FALLBACKS="first-old-key-0123456789, second-old-key-01")
    assert read_settings(rotating, "SECRET_KEY_FALLBACKS") == {
        "SECRET_KEY_FALLBACKS": ["first-old-key-0123456789", "second-old-key-01"]
    }
