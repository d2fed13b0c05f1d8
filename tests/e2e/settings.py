"""Settings of the app processes the browser tests start.

tests.settings (immediate retries, at most 3 attempts, fast password hashing)
with production's static files: hashed, compressed names written by
collectstatic into STATIC_ROOT (set by the fixture) and served by WhiteNoise,
as under the Procfile's gunicorn.
"""

from __future__ import annotations

from tests.settings import *  # noqa: F403

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
