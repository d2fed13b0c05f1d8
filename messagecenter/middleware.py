"""Two small guards every response passes: a cap on request bodies, and no caching of private pages.

``RequestBodyCapMiddleware`` comes first in MIDDLEWARE: it refuses a body
whose Content-Length is over ``MAX_REQUEST_BODY_BYTES`` (413) before
anything reads it. Without it, the CSRF check reads a POST's form to find
its token, and Django writes a large multipart upload to a temporary file
first, whatever the answer. (A body without Content-Length is never read:
Django reads Content-Length bytes.) DATA_UPLOAD_MAX_MEMORY_SIZE and
FILE_UPLOAD_MAX_MEMORY_SIZE (settings.py) cap what Django keeps in memory.

``NoStoreMiddleware`` marks every page ``Cache-Control: no-store, private``
unless the view said otherwise: pages show a user's notifications and
channels, and a shared or back-button cache must not keep them. It sits
after WhiteNoise, so static files keep their long cache lifetimes.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest
from django.http import HttpResponse
from django.http import HttpResponseBadRequest
from django.utils.cache import patch_cache_control

Handler = Callable[[HttpRequest], HttpResponse]


class RequestBodyCapMiddleware:
    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            return HttpResponseBadRequest("Content-Length is not a number.")
        cap: int = settings.MAX_REQUEST_BODY_BYTES
        if length > cap:
            return HttpResponse(
                f"The request body is {length} bytes; this site accepts at most {cap}.",
                status=413,
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)


class NoStoreMiddleware:
    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            patch_cache_control(response, no_store=True, private=True)
        return response
