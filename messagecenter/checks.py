"""System checks for Message Center's settings, run by ``manage.py check``.

A production setting that is missing or malformed is reported here, saying
what to set. Every management command that runs the checks stops on these
errors before doing anything: ``migrate`` (the Procfile's release phase) and
``dbtasks_worker`` included, so a broken deployment never starts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from messagecenter import tokens
from messagecenter.ntfy import NTFY_URL_HELP
from messagecenter.ntfy import split_topic_url

E001_MSG = "NTFY_URL is not set, so notifications cannot be delivered."
E001_HINT = NTFY_URL_HELP
E002_MSG = "NTFY_URL {url!r} is not an ntfy topic URL."
E002_HINT = (
    "Use an http(s) URL that ends with a topic of 1-64 letters, digits, '-' or '_', "
    "e.g. https://ntfy.sh/<topic>."
)
E003_MSG = "SECRET_KEY is not set, so sessions cannot be signed and nobody can sign in."
E003_HINT = (
    "Set the SECRET_KEY environment variable to a long random string, e.g. the output of "
    "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
)
E004_MSG = "ALLOWED_HOSTS is empty while DEBUG is off, so every request would be refused (400)."
E004_HINT = "Set ALLOWED_HOSTS to the comma-separated host names the site answers to."


def check_ntfy_url(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """NTFY_URL must be an ntfy topic URL; it may be empty only while DEBUG is on."""
    url = settings.NTFY_URL
    if not url:
        if settings.DEBUG:
            return []
        return [checks.Error(E001_MSG, hint=E001_HINT, id="messagecenter.E001")]
    try:
        split_topic_url(url)
    except ImproperlyConfigured:
        return [checks.Error(E002_MSG.format(url=url), hint=E002_HINT, id="messagecenter.E002")]
    return []


E005_MSG = "NTFY_ALLOWED_NETWORKS has {value!r}, which is not a network."
E005_HINT = "Use comma-separated networks in CIDR notation, e.g. 10.0.0.0/8,fd00::/8."


def check_ntfy_allowed_networks(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Every NTFY_ALLOWED_NETWORKS entry must parse, or every send would fail on it."""
    errors: list[checks.CheckMessage] = []
    for value in settings.NTFY_ALLOWED_NETWORKS:
        try:
            ipaddress.ip_network(value)
        except ValueError:
            message = E005_MSG.format(value=value)
            errors.append(checks.Error(message, hint=E005_HINT, id="messagecenter.E005"))
    return errors


def check_secret_key(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """SECRET_KEY must not be empty (the development default applies only in DEBUG).

    Django itself only refuses when something first signs a value (a session
    saved at sign-in: a 500), or under ``check --deploy``. A worker, a
    migration and gunicorn's start would all go ahead without it.
    """
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:  # "The SECRET_KEY setting must not be empty."
        key = ""
    if key:
        return []
    return [checks.Error(E003_MSG, hint=E003_HINT, id="messagecenter.E003")]


def check_allowed_hosts(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """ALLOWED_HOSTS must name the site's hosts when DEBUG is off."""
    if settings.DEBUG or settings.ALLOWED_HOSTS:
        return []
    return [checks.Error(E004_MSG, hint=E004_HINT, id="messagecenter.E004")]


E006_MSG = "CHANNEL_TOKEN_KEY entry {position} of {count} is not a Fernet key."
E006_HINT = (
    "Each comma-separated key is 32 url-safe base64-encoded bytes, e.g. the output of "
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'."
)
W001_MSG = (
    "CHANNEL_TOKEN_KEY is not set, so channels' access tokens are encrypted with a key "
    "derived from SECRET_KEY: a new SECRET_KEY would make them unreadable."
)
W001_HINT = "Set CHANNEL_TOKEN_KEY to a Fernet key of its own (E006's hint says how to make one)."


def check_channel_token_keys(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Every CHANNEL_TOKEN_KEY entry must be a Fernet key; production should set one.

    The message names the entry's position, never the key: it is a secret.
    """
    keys = settings.CHANNEL_TOKEN_KEYS
    if not keys:
        if settings.DEBUG:
            return []
        return [checks.Warning(W001_MSG, hint=W001_HINT, id="messagecenter.W001")]
    return [
        checks.Error(
            E006_MSG.format(position=position, count=len(keys)),
            hint=E006_HINT,
            id="messagecenter.E006",
        )
        for position in tokens.malformed_keys()
    ]
