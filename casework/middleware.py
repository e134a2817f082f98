from django.shortcuts import redirect
from django.urls import reverse


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
        return redirect(f"{reverse('charter')}?next={request.get_full_path()}")
