"""The workflow admin: each workflow with its members' states, and cancel."""

from __future__ import annotations

from django.urls import reverse

from dbtasks import workflows
from tests import tasks

CHANGELIST = reverse("admin:dbtasks_dbworkflow_changelist")


def chord():
    return workflows.group(
        [workflows.call(tasks.echo, 1), workflows.call(tasks.echo, 2)],
        then=workflows.call(tasks.tally, "admin"),
    ).enqueue()


def test_the_list_counts_each_workflows_members_by_state(admin_client, db):
    run = chord()

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    content = response.content.decode()
    assert "group(2, then=tally)" in content
    # Two members waiting to run, one waiting on them; none running or finished.
    row = content[content.index(f">{run.id}<") :]
    assert '<td class="field-waiting">3</td>' in row
    assert '<td class="field-finished">0</td>' in row


def test_the_page_lists_members_with_status_and_what_each_waits_on(admin_client, db):
    run = chord()

    response = admin_client.get(reverse("admin:dbtasks_dbworkflow_change", args=[run.id]))

    assert response.status_code == 200
    content = response.content.decode()
    for result in run.results:
        assert reverse("admin:dbtasks_dbtaskresult_change", args=[result.id]) in content
    assert "BLOCKED" in content
    assert "READY" in content
    assert f"[{run.results[0].id}, {run.results[1].id}]" in content  # the callback's waits_on


def test_the_cancel_action_cancels_unstarted_members(admin_client, db):
    run = chord()

    response = admin_client.post(
        CHANGELIST, {"action": "cancel_workflows", "_selected_action": [run.id]}, follow=True
    )

    assert "Cancelled 3 task(s) that had not started." in response.content.decode()
    assert [result.status for result in run.refresh().results] == ["FAILED"] * 3


def test_a_member_task_links_to_its_workflow(admin_client, db):
    run = chord()
    plain = tasks.noop.enqueue()

    member_page = admin_client.get(
        reverse("admin:dbtasks_dbtaskresult_change", args=[run.last.id])
    ).content.decode()
    plain_page = admin_client.get(
        reverse("admin:dbtasks_dbtaskresult_change", args=[plain.id])
    ).content.decode()

    link = reverse("admin:dbtasks_dbworkflow_change", args=[run.id])
    assert f'<a href="{link}">workflow {run.id}</a>' in member_page
    assert '/change/">workflow ' not in plain_page
