"""Step 10 of the tour: the ops dashboard and the metrics (include ``dbtasks.urls``).

Both are invisible to whoever may not use them: a 404, as for a URL that
does not exist, never a login redirect or a 403 that would reveal them.

- ``ops`` (the page) and ``ops_panels`` (the part the page polls with htmx
  every few seconds, rendered from the same template's ``panels`` partial):
  active staff users only.
- ``metrics`` (Prometheus text format): active staff users, or a scraper
  sending ``Authorization: Bearer <settings.DBTASKS_METRICS_TOKEN>``.
- ``queue_control`` (POST, with Django's CSRF check): pause or resume a
  queue, for staff who may add (pause) or delete (resume) paused queues in
  the admin.

They opt out of ``LoginRequiredMiddleware`` with ``@login_not_required``:
its redirect to the login page would tell anyone the URL exists.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.http import HttpRequest
from django.http import HttpResponse
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django.views.decorators.http import require_safe

from dbtasks import queues as queue_controls
from dbtasks.backend import DatabaseBackend
from dbtasks.clock import database_time
from dbtasks.minutes import HISTORY
from dbtasks.ops import prometheus
from dbtasks.ops.backends import database_backends
from dbtasks.ops.charts import throughput_chart
from dbtasks.ops.controls import controls
from dbtasks.ops.failures import latest_cancellations
from dbtasks.ops.failures import latest_failures
from dbtasks.ops.queues import queue_summaries
from dbtasks.ops.queues import queues_without_workers
from dbtasks.ops.recent import recent_activity
from dbtasks.ops.text import format_duration
from dbtasks.ops.workers import live_workers
from dbtasks.ops.workers import running_tasks
from dbtasks.ops.workflows import latest_workflows
from dbtasks.ops.workflows import unfinished_workflows
from dbtasks.times import zone_name

# Seconds between the dashboard's refreshes.
POLL_SECONDS = 5

View = Callable[..., HttpResponse]


def is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def has_metrics_token(request: HttpRequest) -> bool:
    """Whether the request carries ``Authorization: Bearer <DBTASKS_METRICS_TOKEN>``."""
    expected = getattr(settings, "DBTASKS_METRICS_TOKEN", "") or ""
    if not expected:
        return False  # no token configured: staff sessions only
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    # Constant time, so the token cannot be guessed byte by byte from timings.
    return hmac.compare_digest(token.strip().encode(), str(expected).encode())


def visible_to(allowed: Callable[[HttpRequest], bool]) -> Callable[[View], View]:
    """404 for requests ``allowed`` refuses, before anything else (method checks included)."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not allowed(request):
                raise Http404
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def staff_or_metrics_token(request: HttpRequest) -> bool:
    # The token first: a scraper has no session, so this costs no query.
    return has_metrics_token(request) or is_staff(request)


def chosen_backend(request: HttpRequest) -> tuple[DatabaseBackend, list[str]]:
    """The backend named by ``?backend=`` (default: "default", else the first), and all aliases."""
    backends = database_backends()
    if not backends:
        raise Http404("No dbtasks DatabaseBackend is configured in TASKS.")
    alias = request.GET.get("backend") or (
        "default" if "default" in backends else next(iter(backends))
    )
    if alias not in backends:
        raise Http404("No such dbtasks backend.")
    return backends[alias], list(backends)


def panels_context(backend: DatabaseBackend) -> dict[str, Any]:
    """Everything the panels show: a dozen queries, however many rows the tables hold."""
    now = database_time(backend.db_alias)  # the workers' clock, not this host's
    recent = recent_activity(backend, now=now)
    queues = queue_summaries(backend, now=now, recent=recent)
    workers = live_workers(backend, now=now)
    running = running_tasks(backend, now=now)
    live_ids = {worker.worker_id for worker in workers}
    running_by_worker: dict[str, list[Any]] = {}
    for task in running:
        running_by_worker.setdefault(task.worker_id, []).append(task)
    unserved = set(queues_without_workers([queue.name for queue in queues], workers))
    return {
        "backend": backend,
        "now": now,
        "poll_seconds": POLL_SECONDS,
        "zone": zone_name(),
        "window_minutes": int(HISTORY.total_seconds() // 60),
        "counted_until": recent.counted_until,
        "queue_rows": [(queue, queue.name in unserved) for queue in queues],
        "totals": {
            name: sum(getattr(queue, name) for queue in queues)
            for name in (
                "ready",
                "scheduled",
                "blocked",
                "running",
                "failed_last_hour",
                "cancelled_last_hour",
            )
        },
        "chart": throughput_chart(recent.per_minute(int(HISTORY.total_seconds() // 60))),
        "worker_rows": [
            (worker, running_by_worker.get(worker.worker_id, [])) for worker in workers
        ],
        # RUNNING rows whose worker stopped heartbeating: recovery will close them.
        "orphans": [task for task in running if task.worker_id not in live_ids],
        "failures": latest_failures(backend),
        "unfinished_workflows": unfinished_workflows(backend),
        "workflows": latest_workflows(backend),
        "cancellations": latest_cancellations(backend),
        "heartbeat_timeout_text": format_duration(backend.config.heartbeat_timeout),
        "controls": controls(backend, now=now),
    }


@login_not_required
@never_cache
@visible_to(is_staff)
@require_safe
def ops(request: HttpRequest) -> HttpResponse:
    """The whole dashboard page."""
    backend, aliases = chosen_backend(request)
    context = panels_context(backend) | {"aliases": aliases}
    return render(request, "dbtasks/ops.html", context)


@login_not_required
@never_cache
@visible_to(is_staff)
@require_safe
def ops_panels(request: HttpRequest) -> HttpResponse:
    """The dashboard's live part, which the page swaps in every ``POLL_SECONDS``."""
    backend, _ = chosen_backend(request)
    return render(request, "dbtasks/ops.html#panels", panels_context(backend))


@login_not_required
@never_cache
@visible_to(is_staff)
@require_POST
def queue_control(request: HttpRequest, action: str) -> HttpResponse:
    """Pause or resume the queue the form names, then show the dashboard again."""
    backend, _ = chosen_backend(request)
    queue_name = request.POST.get("queue", "")
    if queue_name not in backend.queues:
        raise Http404("No such queue.")
    permission = {"pause": "add", "resume": "delete"}[action]
    if not request.user.has_perm(f"dbtasks.{permission}_dbpausedqueue"):
        raise PermissionDenied
    change = queue_controls.pause if action == "pause" else queue_controls.resume
    change(queue_name, backend_name=backend.alias)
    query = urlencode({"backend": backend.alias})
    return HttpResponseRedirect(f"{reverse('dbtasks:ops')}?{query}", status=303)


@login_not_required
@never_cache
@visible_to(staff_or_metrics_token)
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Every dbtasks backend's metrics in the Prometheus text format."""
    families = prometheus.collect(database_backends())
    return HttpResponse(prometheus.render(families), content_type=prometheus.CONTENT_TYPE)
