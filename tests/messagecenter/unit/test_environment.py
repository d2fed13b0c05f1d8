"""messagecenter/environment.py: the DATABASES entry built from DATABASE_URL."""

from __future__ import annotations

from messagecenter.environment import SQLITE_OPTIONS
from messagecenter.environment import database_config

POSTGRES = "postgres://app:secret@db.example:5432/app"


def test_postgres_keeps_django_defaults_unless_pooled():
    direct = database_config(POSTGRES)
    pooled = database_config(POSTGRES, pooled=True)

    assert direct["DISABLE_SERVER_SIDE_CURSORS"] is False
    # Behind a transaction pooler: no server-side cursors, which also turns
    # off the live poll's prepared statement (messagecenter/compiled.py).
    assert pooled["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert pooled | {"DISABLE_SERVER_SIDE_CURSORS": False} == direct  # nothing else differs
    assert direct["CONN_MAX_AGE"] == 600
    assert direct["CONN_HEALTH_CHECKS"] is True


def test_sqlite_gets_its_options_and_pooled_means_nothing_there():
    config = database_config("sqlite:////tmp/app.sqlite3", pooled=True)

    assert config["OPTIONS"] == SQLITE_OPTIONS
    assert config["DISABLE_SERVER_SIDE_CURSORS"] is False
