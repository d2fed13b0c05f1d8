"""The forms of the Channels page: add or edit a channel, which is always the user's own.

The token field is write-only: it is never rendered back (``render_value``
is off), left empty it keeps the stored token, and "Remove the token"
clears it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit

from django import forms

from messagecenter.channels import Channel
from messagecenter.channels import random_topic
from messagecenter.ntfy import TOPIC_RE

if TYPE_CHECKING:  # ModelForm is generic for type checkers only
    from django.contrib.auth.models import User

    ChannelModelForm = forms.ModelForm[Channel]
else:
    ChannelModelForm = forms.ModelForm


class ChannelForm(ChannelModelForm):
    """Add a channel (``instance=None``) or edit one of ``owner``'s."""

    token = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Optional: an ntfy access token (tk_…) for a protected topic. "
        "It is never shown again; leave empty to keep the one saved.",
    )
    clear_token = forms.BooleanField(required=False, label="Remove the saved token")

    class Meta:
        model = Channel
        fields = ["name", "server_url", "topic"]
        labels = {"server_url": "Server", "topic": "Topic"}
        help_texts = {
            "server_url": "Leave empty for the default server.",
            "topic": "1-64 letters, digits, '-' or '_'. Anyone who knows it can read it: "
            "keep the random one unless the topic is protected by a token.",
        }

    def __init__(self, *args: Any, owner: User, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.owner = owner
        if self.instance._state.adding:
            self.fields["topic"].initial = random_topic()
            del self.fields["clear_token"]
        for name in ("name", "server_url", "topic"):
            self.fields[name].widget.attrs["autocomplete"] = "off"

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        taken = Channel.objects.filter(owner=self.owner, name=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(
                "You already have a channel named %(name)s.",
                code="duplicate",
                params={"name": name},
            )
        return name

    def clean_server_url(self) -> str:
        url: str = self.cleaned_data["server_url"]
        if not url:
            return ""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or parts.query or parts.fragment:
            raise forms.ValidationError(
                "Enter the server's address, such as https://ntfy.sh/, without a topic.",
                code="not_a_server",
            )
        return url if url.endswith("/") else f"{url}/"

    def clean_topic(self) -> str:
        topic: str = self.cleaned_data["topic"].strip()
        if not TOPIC_RE.match(topic):
            raise forms.ValidationError(
                "A topic is 1-64 letters, digits, '-' or '_'.", code="bad_topic"
            )
        return topic

    def save(self, commit: bool = True) -> Channel:
        channel = super().save(commit=False)
        channel.owner = self.owner
        if self.cleaned_data.get("clear_token"):
            channel.token = ""
        elif self.cleaned_data.get("token"):
            channel.token = self.cleaned_data["token"]
        if commit:
            channel.save()
        return channel
