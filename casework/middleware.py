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
