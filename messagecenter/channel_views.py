"""The Channels page: a user's own ntfy destinations, and how to subscribe to them.

Every lookup is scoped to ``request.user``: another user's channel id is a
404, exactly like an id that does not exist. Tokens are never rendered back.
"""

from __future__ import annotations

import segno
from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.shortcuts import redirect
from django.shortcuts import render
from django.utils.safestring import SafeString
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods
from django.views.decorators.http import require_POST

from messagecenter import quotas
from messagecenter import sending
from messagecenter.channel_forms import ChannelForm
from messagecenter.channels import Channel
from messagecenter.channels import default_channel
from messagecenter.models import Notification
from messagecenter.views import HtmxHttpRequest

TEST_MESSAGE = "A test notification from Message Center: this channel works."


@require_http_methods(["GET", "POST"])
def channel_list(request: HtmxHttpRequest) -> HttpResponse:
    """The user's channels, and a form to add one."""
    default_channel(request.user)  # a new user sees their private channel at once
    form = ChannelForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        channel = form.save()
        messages.success(request, f"Channel “{channel.name}” added.")
        return redirect("channel-detail", pk=channel.pk)
    context = {"channels": Channel.objects.owned_by(request.user), "form": form}
    status = 422 if form.errors else 200
    return render(request, "messagecenter/channels.html", context, status=status)


@require_http_methods(["GET", "POST"])
def channel_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Rename or edit one channel; the subscribe panel with its QR code."""
    channel = get_object_or_404(Channel, pk=pk, owner=request.user)
    form = ChannelForm(request.POST or None, instance=channel, owner=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Channel saved.")
        return redirect("channel-detail", pk=channel.pk)
    if form.errors:
        channel.refresh_from_db()  # the panel shows what is saved, not the rejected edit
    context = {"channel": channel, "form": form, "qr_code": qr_svg(channel.subscribe_url)}
    status = 422 if form.errors else 200
    return render(request, "messagecenter/channel.html", context, status=status)


@require_POST
def channel_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Delete a channel; notifications sent to it stay, shown without a channel."""
    channel = get_object_or_404(Channel, pk=pk, owner=request.user)
    channel.delete()
    messages.success(request, f"Channel “{channel.name}” deleted.")
    return redirect("channel-list")


@require_POST
def channel_test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Send a test notification to the channel; it appears in the list like any other."""
    channel = get_object_or_404(Channel, pk=pk, owner=request.user)
    try:
        with transaction.atomic():
            quotas.reserve(request.user)  # a test counts like any send
            notification = Notification.objects.create(
                owner=request.user, channel=channel, title="Test", message=TEST_MESSAGE
            )
            sending.send(notification, [channel])
    except quotas.QuotaReached as reached:
        messages.error(request, reached.message())
        return redirect("channel-list")
    messages.success(request, f"Test notification queued for “{channel.name}”.")
    return redirect("index")


def qr_svg(data: str) -> SafeString:
    """An inline SVG QR code of ``data``: no script, no style attribute (the CSP allows it)."""
    code = segno.make(data, error="m")
    svg = code.svg_inline(scale=4, dark="#000", light="#fff", title="QR code to subscribe")
    # segno writes the SVG itself from the data, which it encodes as modules.
    return mark_safe(svg)
