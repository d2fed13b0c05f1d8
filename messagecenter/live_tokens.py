"""The live channel's pass: a signed token, so a poll needs no session and no user lookup.

Every page render issues one (``issue()``), signed with SECRET_KEY and
bound to the user's id, their ``LiveKey`` and their password. The poll
(``live.poll``, marked ``@login_not_required``) checks it with no query of
its own: the one query that reads the rows' progress joins the owner's
password and live key too, and ``Pass.holds()`` compares them. So:

- another user's rows are never read: the query is filtered by the token's
  user, and nobody can sign a token for someone else;
- signing out gives the user a new live key (``user_logged_out``), and a
  password change a new password hash: either way every token issued
  before reads nothing and gets 403, and the page reloads (or says so);
- a token lasts ``MAX_AGE`` at most, so one copied out of a page is soon
  worthless even if its user never signs out.

It travels in a request header (``HEADER``), not the URL, so it never lands
in an access log.

A page sends the same token with every poll, so each process remembers the
tokens it has verified (``_verified``) and the digests it has computed
(``_digest``): pure functions of their arguments and of the signing keys,
which are part of what they remember by. Checking a token's signature and
reading its JSON was a fifth of an unchanged poll's own work; its age is
still checked on every poll.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.core import signing
from django.db import models
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare
from django.utils.crypto import salted_hmac

SALT = "messagecenter.live"
HEADER = "X-Live-Token"
META_KEY = "HTTP_X_LIVE_TOKEN"
# Longer than anyone watches a page; an expired token costs one page reload.
MAX_AGE = timedelta(hours=12)


class LiveKey(models.Model):
    """A user's live-channel key: a new one at each sign-out voids every token issued."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="live_key",
    )
    key = models.CharField(max_length=32)

    def __str__(self) -> str:
        return f"live key of user {self.user_id}"


def new_key() -> str:
    return secrets.token_urlsafe(16)


def password_digest(password: str) -> str:
    """What a token says of the password hash: changes with it, reveals nothing of it."""
    return _digest(password, settings.SECRET_KEY)


@lru_cache(maxsize=1024)
def _digest(password: str, secret: str) -> str:
    return salted_hmac(SALT, password, secret=secret, algorithm="sha256").hexdigest()[:24]


def issue(user: Any) -> str:
    """A token for ``user``'s live channel (one query: their live key, made if missing)."""
    live_key, _ = LiveKey.objects.get_or_create(user=user, defaults={"key": new_key()})
    claims = {"u": user.pk, "k": live_key.key, "p": password_digest(user.password)}
    return signing.dumps(claims, salt=SALT, compress=False)


@dataclass(frozen=True, slots=True)
class Pass:
    """A token whose signature and age are right; ``holds()`` checks it is still current."""

    user_id: int
    key: str
    password: str  # the digest

    def holds(self, *, password: str | None, is_active: bool, key: str | None) -> bool:
        """Whether the user's current password hash, state and live key are the token's."""
        return (
            is_active
            and password is not None
            and key is not None
            and constant_time_compare(self.key, key)
            and _same_password(self.password, password)
        )


def _same_password(digest: str, password: str) -> bool:
    """Whether ``digest`` is ``password``'s under the signing key or a fallback: rotating
    SECRET_KEY (the old one in SECRET_KEY_FALLBACKS) voids no open page's token."""
    return any(constant_time_compare(digest, _digest(password, key)) for key in _signing_keys())


def _signing_keys() -> tuple[str, ...]:
    """SECRET_KEY, then the keys it replaced (SECRET_KEY_FALLBACKS)."""
    return (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)


def read(request: HttpRequest) -> Pass | None:
    """The request's token, if it is signed by us and not too old; None otherwise."""
    # META, not request.headers: that builds a dict of every header first.
    token = request.META.get(META_KEY, "")
    if not token or len(token) > 500:
        return None
    try:
        verified, issued_at = _verified(token, _signing_keys())
    except (signing.BadSignature, TypeError):
        return None
    # Here, not in _verified: a remembered token ages too.
    if time.time() - issued_at > MAX_AGE.total_seconds():
        return None
    return verified


@lru_cache(maxsize=4096)
def _verified(token: str, keys: tuple[str, ...]) -> tuple[Pass, int]:
    """The token's pass and when it was signed; raises if it is not ours or malformed.

    A token that fails raises, and ``lru_cache`` remembers only what returns:
    a bad token is checked again each time it comes.
    """
    claims = signing.loads(token, key=keys[0], fallback_keys=list(keys[1:]), salt=SALT)
    if not isinstance(claims, dict):
        raise TypeError("not a live token")
    user_id, key, password = claims.get("u"), claims.get("k"), claims.get("p")
    if type(user_id) is not int or not isinstance(key, str) or not isinstance(password, str):
        raise TypeError("not a live token")
    # Signed, so laid out as loads() read it: "<payload>:<timestamp>:<signature>".
    issued_at = signing.b62_decode(token.rsplit(":", 2)[1])
    return Pass(user_id, key, password), issued_at


@receiver(user_logged_out, dispatch_uid="messagecenter.live_tokens.rotate")
def rotate(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Void the user's live tokens when they sign out (from any of their sessions)."""
    if user is not None and user.pk is not None:
        LiveKey.objects.update_or_create(user=user, defaults={"key": new_key()})
