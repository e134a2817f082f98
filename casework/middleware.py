from urllib.parse import urlencode

from django.conf import settings
from django.middleware.locale import LocaleMiddleware
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation


class CharterMiddleware:
    """Until a signed-in user accepts the current confidentiality charter, every page but the
    charter itself, logout, language switch and static files redirects to the charter."""

    ALLOWED_URL_NAMES = {"charter", "login", "logout", "set_language"}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = request.user
        if not user.is_authenticated or user.has_accepted_current_charter:
            return None
        match = request.resolver_match
        if match and match.url_name in self.ALLOWED_URL_NAMES:
            return None
        if request.path.startswith("/static/"):
            return None
        return redirect(f"{reverse('charter')}?{urlencode({'next': request.get_full_path()})}")


class FrenchFirstLocaleMiddleware(LocaleMiddleware):
    """The interface speaks French unless the user chose another language with the language
    switch (cookie set by `set_language`); the browser's Accept-Language is not followed, so a
    French adviser on an English-configured computer still gets French."""

    def process_request(self, request):
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        supported = {code for code, _name in settings.LANGUAGES}
        language = chosen if chosen in supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()


class PrivateCacheMiddleware:
    """`Cache-Control: private, no-store` on every response Django builds for a request that used
    the session — every signed-in page does (authentication reads it), and so does every page that
    looks at the user — or that sets a cookie: no browser cache, shared cache or proxy keeps a
    page of case or company data, an export or a calendar, and the browser's back button after a
    logout does not show it again from its cache. A view that chose its own Cache-Control keeps it.

    Listed right after WhiteNoise: static files, answered by WhiteNoise before this, stay cacheable
    (they hold no data)."""

    VALUE = "private, no-store"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.has_header("Cache-Control"):
            return response
        session = getattr(request, "session", None)
        if (session is not None and session.accessed) or response.cookies:
            response["Cache-Control"] = self.VALUE
        return response
