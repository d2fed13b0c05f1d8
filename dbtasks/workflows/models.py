"""The tables behind workflows: one row per workflow, one per member task.

A member is an ordinary ``DBTaskResult`` row (``in_workflow`` set) plus a
``DBWorkflowMember`` row keyed by the same id, which holds the workflow's
edges and its counter:

- ``waits_on``: the members it waits for (result ids, in order);
- ``dependants``: the members waiting for it;
- ``waiting_for``: how many of ``waits_on`` have not finished yet. Each
  finish decrements it once, in the transaction that records the finish;
  the decrement that reaches zero releases the member (BLOCKED -> READY).
- ``settled``: this member's finish has been counted in its dependants (so a
  member re-queued from the admin and finishing again is not counted twice).
"""

from __future__ import annotations

from django.db import models

# What a member receives as its first positional argument when it is released.
NOTHING = "nothing"  # it waits on nothing: its arguments are as given
VALUE = "value"  # a chain step: the previous step's return value; runs only if that succeeded
OUTCOMES = "outcomes"  # a group's callback: every member's outcome, whatever it was
RECEIVES_CHOICES = [
    (NOTHING, "Nothing"),
    (VALUE, "The previous step's return value"),
    (OUTCOMES, "Each member's outcome"),
]


class DBWorkflow(models.Model):
    """Tasks enqueued together, some waiting on others (``dbtasks.workflows``)."""

    backend_name = models.CharField(max_length=100)
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "dbtasks"
        verbose_name = "workflow"
        indexes = [models.Index(fields=["created_at"], name="dbtasks_workflow_created_idx")]

    def __str__(self) -> str:
        return f"workflow {self.pk} {self.name}".rstrip()


class DBWorkflowMember(models.Model):
    """A workflow's task: what it waits on, and how many of those are unfinished."""

    result = models.OneToOneField(
        "dbtasks.DBTaskResult",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="workflow_member",
    )
    workflow = models.ForeignKey(DBWorkflow, on_delete=models.CASCADE, related_name="members")
    position = models.PositiveIntegerField()
    receives = models.CharField(max_length=10, choices=RECEIVES_CHOICES, default=NOTHING)
    waits_on = models.JSONField(default=list)
    dependants = models.JSONField(default=list)
    waiting_for = models.PositiveIntegerField(default=0)
    settled = models.BooleanField(default=False)

    class Meta:
        app_label = "dbtasks"
        verbose_name = "workflow member"
        ordering = ["workflow", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "position"], name="dbtasks_workflow_position_unique"
            )
        ]
        indexes = [
            # The dashboard's count of unfinished workflows, however many have finished.
            models.Index(
                fields=["workflow"],
                condition=models.Q(settled=False),
                name="dbtasks_member_unsettled_idx",
            )
        ]

    def __str__(self) -> str:
        return f"member {self.position} of workflow {self.workflow_id} (task {self.result_id})"
