"""Step 2 of the tour: send a notification; then show its delivery (step 7), retry or cancel it.

Each view answers htmx requests with a template partial
(``messagecenter/index.html#notification-row``) and plain browser requests
with a full page or a redirect, so everything works without JavaScript.
Every lookup is scoped to ``request.user``: another user's id is a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.paginator import Page
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.db import transaction
from django.http import HttpRequest
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.shortcuts import redirect
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.http import require_http_methods
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

from dbtasks.results import State
from messagecenter import live as live_rows
from messagecenter import live_tokens
from messagecenter import quotas
from messagecenter import sending
from messagecenter.forms import NotificationForm
from messagecenter.history import history_of
from messagecenter.models import Notification
from messagecenter.quotas import QuotaReached
from messagecenter.results import MessageDelivery
from messagecenter.results import deliveries_for
from messagecenter.results import delivery_of

PAGE_SIZE = 20
TEMPLATE = "messagecenter/index.html"


class HtmxHttpRequest(HttpRequest):
    """An HttpRequest after django-htmx's middleware (for type checkers).

    Every view here requires a signed-in user (``LoginRequiredMiddleware``);
    the live poll, which a token authenticates instead, is ``live.poll``.
    """

    htmx: HtmxDetails
    user: User


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def index(request: HtmxHttpRequest) -> HttpResponse:
    """Show the form and the user's notifications; on POST, queue a new one."""
    if request.method == "POST":
        form = NotificationForm(request.POST, owner=request.user)
        if form.is_valid():
            try:
                notification = create_notification(request, form)
            except QuotaReached as reached:
                return quota_reached(request, form, reached)
            if request.htmx:
                # A fresh form, and the new row out of band at the top of the list.
                context = {
                    "form": NotificationForm(owner=request.user),
                    "notification": notification,
                    "delivery": delivery_of(notification),
                    "sent": notification,
                    "total": Notification.objects.filter(owner=request.user).count(),
                }
                return render(request, f"{TEMPLATE}#form-sent", context)
            messages.success(request, "Notification queued. Its status updates below.")
            return redirect("index")
        # 422: the request was understood but the data is not valid. htmx
        # swaps it anyway (responseHandling in base.html's htmx-config).
        if request.htmx:
            return render(request, f"{TEMPLATE}#notification-form", {"form": form}, status=422)
        return render_index(request, form, status=422)
    return render_index(request, NotificationForm(owner=request.user))


def quota_reached(
    request: HtmxHttpRequest, form: NotificationForm, reached: QuotaReached
) -> HttpResponse:
    """The form again, nothing sent, with when the next send is allowed (429, Retry-After)."""
    form.add_error(None, reached.message(form.cleaned_data.get("time_zone")))
    if request.htmx:  # base.html's htmx-config swaps 429 too
        response = render(request, f"{TEMPLATE}#notification-form", {"form": form}, status=429)
    else:
        response = render_index(request, form, status=429)
    if reached.retry_after:
        response["Retry-After"] = str(reached.retry_after)
    return response


def render_index(
    request: HtmxHttpRequest, form: NotificationForm, *, status: int = 200
) -> HttpResponse:
    page = notifications_page(request)
    deliveries = deliveries_for(page.object_list)
    rows = [(notification, deliveries[notification.pk]) for notification in page.object_list]
    poll_after = live_rows.pace(
        (delivery.progress, delivery.due) for delivery in deliveries.values()
    )
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "total": page.paginator.count,
        "poll_after": poll_after,
        "live_token": live_tokens.issue(request.user),
    }
    return render(request, TEMPLATE, context, status=status)


def notifications_page(request: HtmxHttpRequest) -> Page[Notification]:
    """The requested page of the user's notifications, newest first."""
    notifications = Notification.objects.filter(owner=request.user).order_by("-created_at", "-id")
    return Paginator(notifications, PAGE_SIZE).get_page(request.GET.get("page"))


def create_notification(request: HtmxHttpRequest, form: NotificationForm) -> Notification:
    """Save the notification and enqueue its delivery to each channel, all or nothing.

    The form's token makes a second post of the same form (a double click, a
    resent request) a duplicate: it returns the first notification and
    nothing new is saved or sent. Past the user's send quota it raises
    ``QuotaReached`` and saves nothing.
    """
    # With a database task backend, enqueue() inserts the task rows on this
    # same connection: inside atomic() the notification and its tasks commit
    # together, or neither does, and a worker can never pick up a task whose
    # notification is not there yet. (With a broker you would enqueue after
    # commit instead, with transaction.on_commit(); dbtasks' workflows need
    # the database backend.)
    key = form.cleaned_data.get("idempotency_key")
    try:
        with transaction.atomic():
            quotas.reserve(request.user)  # raises QuotaReached, nothing saved
            notification = form.save(commit=False)
            notification.owner = request.user
            notification.idempotency_key = key
            channels = form.send_to()
            notification.channel = channels[0]
            notification.save()
            sending.send(notification, channels, run_after=notification.deliver_at)
    except IntegrityError:
        # The same form was posted before: (owner, idempotency_key) is unique.
        duplicate = Notification.objects.filter(owner=request.user, idempotency_key=key).first()
        if key is None or duplicate is None:
            raise
        return duplicate
    return notification


@require_GET
def notification_attempts(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Every attempt of every delivery of a notification: when, how it ended, the error."""
    notification = get_object_or_404(Notification, pk=pk, owner=request.user)
    context = {
        "notification": notification,
        "delivery": delivery_of(notification),
        "history": history_of(notification),
    }
    if request.htmx:
        return render(request, f"{TEMPLATE}#attempt-history", context)
    return render(request, "messagecenter/attempts.html", context)


@require_POST
def notification_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Send a failed notification again, to each channel that does not have it.

    Anything but a failed notification is left alone (a double click, or a
    retry that already started), so retrying twice never sends twice.
    """
    with transaction.atomic():
        # The row lock (on databases that have one) makes two simultaneous
        # retries of the same notification queue a single task.
        notification = get_object_or_404(
            Notification.objects.select_for_update(), pk=pk, owner=request.user
        )
        retried = sending.retry(notification, delivery_of(notification))
        delivery = delivery_of(notification)
    if request.htmx:
        return render_row(request, notification, delivery)
    if retried:
        messages.success(request, "Trying again. Its status updates below.")
    else:
        messages.info(request, "That notification has not failed, so it was not retried.")
    return redirect("index")


@require_POST
def notification_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Cancel a notification's sends that have not gone out (a scheduled one, say).

    On every channel: a waiting send never runs; a running one is asked to
    stop, which it does unless its message is already on its way to ntfy.
    The delivery report then says which channels have it.
    """
    notification = get_object_or_404(Notification, pk=pk, owner=request.user)
    delivery = delivery_of(notification)
    cancelled = sending.cancel(delivery) > 0
    if request.htmx:
        return render_row(request, notification, delivery_of(notification))
    if cancelled and delivery.status == State.RUNNING:
        messages.info(request, "Cancel requested: it stops unless it is already being sent.")
    elif cancelled:
        messages.success(request, "Cancelled: it will not be sent.")
    else:
        messages.info(request, "That notification was already on its way, so it was not cancelled.")
    return redirect("index")


def render_row(
    request: HtmxHttpRequest, notification: Notification, delivery: MessageDelivery
) -> HttpResponse:
    context = {"notification": notification, "delivery": delivery}
    return render(request, f"{TEMPLATE}#notification-row", context)
