"""Postgres NOTIFYs every change a live poll's answer depends on (messagecenter/live_memo.py).

Triggers on the results, the notifications and their channels, the users
and their live keys send, on the channel ``messagecenter_live``, the names
of what changed: ``r<id>,<id>...`` (results), ``n<id>`` (a notification),
``u<id>`` (a user). NOTIFY is transactional: it is sent when the change
commits, never if it rolls back.

The results' trigger runs once per statement (a worker's batch of outcomes
is one notification, split only past 7,900 characters of ids: a payload
must stay under 8000 bytes), and only names the rows whose progress
changed: state, attempts, due time, cancellation or concurrency key.
Nothing on SQLite, which has no NOTIFY: there every poll queries.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import migrations

CHANNEL = "messagecenter_live"

# The ids in one notification, at most (Postgres takes payloads under 8000 bytes).
LONGEST_PAYLOAD = 7900

# A result's progress (dbtasks.progress): what the page shows of it.
PROGRESS = "status, attempt_count, cancelled_at, available_after, concurrency_key"

RESULTS_FUNCTION = f"""
CREATE OR REPLACE FUNCTION messagecenter_live_results() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids text;
    payload text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT string_agg(n.id::text, ',') INTO ids
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (n.{PROGRESS.replace(", ", ", n.")})
            IS DISTINCT FROM (o.{PROGRESS.replace(", ", ", o.")});
    ELSE
        SELECT string_agg(id::text, ',') INTO ids FROM old_rows;
    END IF;
    IF ids IS NULL THEN
        RETURN NULL;
    END IF;
    -- A payload must stay under 8000 bytes: split at the last comma before.
    WHILE length(ids) > {LONGEST_PAYLOAD} LOOP
        payload := left(ids, {LONGEST_PAYLOAD});
        payload := left(payload, length(payload) - position(',' IN reverse(payload)));
        PERFORM pg_notify('{CHANNEL}', 'r' || payload);
        ids := substr(ids, length(payload) + 2);
    END LOOP;
    PERFORM pg_notify('{CHANNEL}', 'r' || ids);
    RETURN NULL;
END
$$;
"""

# For a row of another table: TG_ARGV[0] is the kind ("n", "u"), TG_ARGV[1]
# the column that holds the id it names.
ROW_FUNCTION = f"""
CREATE OR REPLACE FUNCTION messagecenter_live_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        '{CHANNEL}',
        TG_ARGV[0] || (to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END) ->> TG_ARGV[1])
    );
    RETURN NULL;
END
$$;
"""


def _row_triggers(apps: Any) -> list[tuple[str, str, str, str, str]]:
    """(trigger, table, events, kind, id column) for each table but the results."""
    table = {
        name: apps.get_model(*name.split("."))._meta.db_table
        for name in (
            "messagecenter.Notification",
            "messagecenter.Destination",
            "messagecenter.LiveKey",
            settings.AUTH_USER_MODEL,
        )
    }
    return [
        ("messagecenter_live_notification", table["messagecenter.Notification"],
         "UPDATE OR DELETE", "n", "id"),
        ("messagecenter_live_destination", table["messagecenter.Destination"],
         "INSERT OR UPDATE OR DELETE", "n", "notification_id"),
        ("messagecenter_live_livekey", table["messagecenter.LiveKey"],
         "INSERT OR UPDATE OR DELETE", "u", "user_id"),
        ("messagecenter_live_user", table[settings.AUTH_USER_MODEL],
         "UPDATE OR DELETE", "u", "id"),
    ]  # fmt: skip


def create_triggers(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    results = apps.get_model("dbtasks", "DBTaskResult")._meta.db_table
    quote = schema_editor.quote_name
    schema_editor.execute(RESULTS_FUNCTION)
    schema_editor.execute(ROW_FUNCTION)
    schema_editor.execute(
        f"CREATE TRIGGER messagecenter_live_results_update AFTER UPDATE ON {quote(results)} "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION messagecenter_live_results()"
    )
    schema_editor.execute(
        f"CREATE TRIGGER messagecenter_live_results_delete AFTER DELETE ON {quote(results)} "
        "REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION messagecenter_live_results()"
    )
    for trigger, table, events, kind, column in _row_triggers(apps):
        schema_editor.execute(
            f"CREATE TRIGGER {trigger} AFTER {events} ON {quote(table)} FOR EACH ROW "
            f"EXECUTE FUNCTION messagecenter_live_row('{kind}', '{column}')"
        )


def drop_triggers(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    results = apps.get_model("dbtasks", "DBTaskResult")._meta.db_table
    quote = schema_editor.quote_name
    for trigger in ("messagecenter_live_results_update", "messagecenter_live_results_delete"):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {quote(results)}")
    for trigger, table, *_ in _row_triggers(apps):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {quote(table)}")
    schema_editor.execute("DROP FUNCTION IF EXISTS messagecenter_live_results()")
    schema_editor.execute("DROP FUNCTION IF EXISTS messagecenter_live_row()")


class Migration(migrations.Migration):
    dependencies = [
        ("messagecenter", "0009_destinations"),
        ("dbtasks", "0014_rate_limits"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(create_triggers, drop_triggers, elidable=False)]
