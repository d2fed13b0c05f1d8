"""The form behind "Send": what a valid notification is.

ntfy's limits are checked here, before anything is queued: a message of at
most 4,096 bytes of UTF-8, a one-line title, a delivery time in the near
future. Any Unicode a person types is accepted and kept as typed.
"""

from __future__ import annotations

import functools
import unicodedata
import uuid
import zoneinfo
from datetime import datetime
from datetime import timedelta
from datetime import tzinfo
from typing import TYPE_CHECKING
from typing import Any

from django import forms
from django.utils import timezone

from messagecenter.channels import Channel
from messagecenter.channels import default_channel
from messagecenter.models import Notification

if TYPE_CHECKING:  # ModelForm is generic for type checkers only
    from django.contrib.auth.models import User

    NotificationModelForm = forms.ModelForm[Notification]
else:
    NotificationModelForm = forms.ModelForm

# ntfy turns longer messages into attachments (or refuses them).
MAX_MESSAGE_BYTES = 4096
MAX_TAGS = 5
MAX_TAG_LENGTH = 50
# Keep well under the backend's purge of unfinished results (dbtasks'
# purge.unfinished, 20 days in settings.py): a task waiting longer than that
# would be deleted before it ever ran.
MAX_DELIVERY_DELAY = timedelta(days=7)
# One message goes to at most this many channels: each is a request to an ntfy server.
MAX_CHANNELS = 10

# Unicode categories that break a line or are invisible controls. Format
# characters (Cf) are allowed: emoji sequences need the zero-width joiner,
# and right-to-left text uses direction marks.
LINE_BREAKING_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


@functools.cache
def known_time_zones() -> frozenset[str]:
    """The IANA names the time zone database has (read once: it scans a directory)."""
    return frozenset(zoneinfo.available_timezones())


class NotificationForm(NotificationModelForm):
    """Validate a notification; ``save()`` is left to the view (it sets the owner).

    With ``owner``, ``channels`` are some of theirs (another user's id is
    an error), at most ``MAX_CHANNELS``; none chosen (or no ``owner``) means
    the owner's first channel, made if they have none (``send_to()``).
    """

    channels = forms.ModelMultipleChoiceField(
        queryset=Channel.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Where it goes: one or more of your channels (manage them on the Channels page).",
    )

    # Filled in by static/messagecenter/app.js with the browser's time zone
    # (e.g. "Europe/Paris"), so "deliver at 09:00" means the sender's 09:00.
    # Without JavaScript it is empty and the server's time zone applies.
    time_zone = forms.CharField(required=False, widget=forms.HiddenInput)
    # A new token with every blank form: the same form posted twice (a double
    # click, a resent request) carries the same token and is sent once
    # (dbtasks' unique tasks, see views.create_notification).
    idempotency_key = forms.UUIDField(required=False, widget=forms.HiddenInput, initial=uuid.uuid4)
    tags = forms.CharField(
        required=False,
        max_length=MAX_TAGS * (MAX_TAG_LENGTH + 2),
        help_text="Optional, comma-separated: emoji short codes (warning, tada) or words.",
    )

    class Meta:
        model = Notification
        fields = ["message", "title", "priority", "tags", "deliver_at"]
        labels = {"deliver_at": "Deliver at"}
        help_texts = {
            "message": "Up to 4,096 bytes (fewer characters for emoji and non-Latin scripts).",
            "deliver_at": "Optional. Leave empty to send now.",
        }
        widgets = {
            "message": forms.Textarea(attrs={"rows": 3, "dir": "auto", "maxlength": 4096}),
            "title": forms.TextInput(attrs={"dir": "auto", "autocomplete": "off"}),
            "deliver_at": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            ),
        }

    def __init__(self, *args: Any, owner: User | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.owner = owner
        if owner is not None:
            channel_field = self.fields["channels"]
            assert isinstance(channel_field, forms.ModelMultipleChoiceField)
            channel_field.queryset = Channel.objects.owned_by(owner)
            # Read once: the widget would otherwise query them twice.
            channels = list(channel_field.queryset) or [default_channel(owner)]
            channel_field.choices = [(channel.pk, channel.name) for channel in channels]
            channel_field.initial = [channels[0].pk]
        self.fields["tags"].widget.attrs.update({"dir": "auto", "autocomplete": "off"})
        # app.js replaces this with the browser's zone, which it also sends.
        zone = timezone.get_current_timezone_name()
        self.fields["deliver_at"].help_text += f" Time zone: {zone}."

    # Behind "More options" on the page, so the message box and Send stay in view.
    OPTIONAL_FIELDS = ("title", "priority", "deliver_at", "tags")

    @property
    def shows_more_options(self) -> bool:
        """Open "More options" when one of them has an error or a value not the default."""
        if not self.is_bound:
            return False
        if any(name in self.errors for name in self.OPTIONAL_FIELDS):
            return True
        changed = {"title", "deliver_at", "tags"} & {
            name for name in self.OPTIONAL_FIELDS if self.data.get(name)
        }
        priority = str(self.data.get("priority") or Notification.Priority.DEFAULT)
        return bool(changed) or priority != str(Notification.Priority.DEFAULT)

    def full_clean(self) -> None:
        super().full_clean()
        # Put the cursor in the first field with an error: browsers honour
        # autofocus on a full page load, and htmx on the form it swaps in.
        first_error = next((name for name in self.fields if name in self.errors), None)
        if first_error is not None:
            self.fields[first_error].widget.attrs["autofocus"] = True

    def clean_channels(self) -> list[Channel]:
        channels = list(self.cleaned_data["channels"])
        if len(channels) > MAX_CHANNELS:
            raise forms.ValidationError(
                "Choose at most %(max)s channels.", code="too_many", params={"max": MAX_CHANNELS}
            )
        return channels

    def send_to(self) -> list[Channel]:
        """The channels chosen, or the owner's first channel when none was."""
        channels: list[Channel] = self.cleaned_data.get("channels") or []
        if channels or self.owner is None:
            return channels
        return [Channel.objects.owned_by(self.owner).first() or default_channel(self.owner)]

    def clean_message(self) -> str:
        # Browsers send a textarea's line breaks as CRLF: keep what was typed.
        message: str = self.cleaned_data["message"].replace("\r\n", "\n")
        size = len(message.encode("utf-8"))
        if size > MAX_MESSAGE_BYTES:
            raise forms.ValidationError(
                "This message is %(size)s bytes in UTF-8; ntfy accepts at most %(limit)s. "
                "Shorten it by %(over)s bytes.",
                code="too_many_bytes",
                params={"size": size, "limit": MAX_MESSAGE_BYTES, "over": size - MAX_MESSAGE_BYTES},
            )
        return message

    def clean_title(self) -> str:
        title: str = self.cleaned_data["title"]
        if any(unicodedata.category(char) in LINE_BREAKING_CATEGORIES for char in title):
            raise forms.ValidationError(
                "The title must be a single line, without line breaks, tabs or control characters.",
                code="not_one_line",
            )
        return title

    def clean_tags(self) -> list[str]:
        tags = [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]
        if len(tags) > MAX_TAGS:
            raise forms.ValidationError(
                "At most %(max)s tags.", code="too_many_tags", params={"max": MAX_TAGS}
            )
        for tag in tags:
            if len(tag) > MAX_TAG_LENGTH:
                raise forms.ValidationError(
                    "Each tag is at most %(max)s characters.",
                    code="tag_too_long",
                    params={"max": MAX_TAG_LENGTH},
                )
            if any(unicodedata.category(char) in LINE_BREAKING_CATEGORIES for char in tag):
                raise forms.ValidationError(
                    "Tags cannot contain control characters.", code="tag_control"
                )
        return tags

    def clean_time_zone(self) -> tzinfo | None:
        name = self.cleaned_data["time_zone"].strip()
        # Only names from the time zone database reach ZoneInfo(): it opens a
        # file named after its argument, so "America" (a directory) or a
        # 300-character name raised OSError, a 500, not a validation error.
        if not name or name not in known_time_zones():
            # A stale or odd browser value: fall back to the server's zone.
            return None
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            return None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        deliver_at: datetime | None = cleaned.get("deliver_at")
        if deliver_at is None:
            return cleaned
        zone = cleaned.get("time_zone")
        if isinstance(zone, tzinfo):
            # The field read the browser's wall-clock time in the server's
            # zone; read the same wall-clock time in the sender's zone.
            deliver_at = timezone.make_naive(deliver_at).replace(tzinfo=zone)
            cleaned["deliver_at"] = deliver_at
        now = timezone.now()
        if deliver_at <= now:
            self.add_error(
                "deliver_at",
                forms.ValidationError(
                    "Choose a time in the future, or leave it empty to send now.",
                    code="in_the_past",
                ),
            )
        elif deliver_at > now + MAX_DELIVERY_DELAY:
            self.add_error(
                "deliver_at",
                forms.ValidationError(
                    "Choose a time within the next %(days)s days.",
                    code="too_far",
                    params={"days": MAX_DELIVERY_DELAY.days},
                ),
            )
        return cleaned
