"""The Message Center app: notifications sent with django.tasks."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class MessageCenterConfig(AppConfig):
    name = "messagecenter"
    verbose_name = "Message Center"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from messagecenter.checks import check_allowed_hosts
        from messagecenter.checks import check_channel_token_keys
        from messagecenter.checks import check_ntfy_allowed_networks
        from messagecenter.checks import check_ntfy_url
        from messagecenter.checks import check_secret_key

        checks.register(check_ntfy_url)
        checks.register(check_ntfy_allowed_networks)
        checks.register(check_secret_key)
        checks.register(check_allowed_hosts)
        checks.register(check_channel_token_keys)
