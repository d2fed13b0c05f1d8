"""The web app's URLs plus ``/bench/hello/``: the baseline of the poll-endpoint figure."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest
from django.http import HttpResponse
from django.urls import path

from messagecenter.urls import urlpatterns as app_urlpatterns


@login_not_required
def hello(request: HttpRequest) -> HttpResponse:
    """The cheapest Django view: through the same middleware, no database."""
    return HttpResponse("Hello, world", content_type="text/plain")


urlpatterns = [path("bench/hello/", hello, name="bench-hello"), *app_urlpatterns]
