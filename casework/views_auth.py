from django.contrib.auth import views as auth_views

from casework.forms_auth import LoginForm


class LoginView(auth_views.LoginView):
    """Django's login view; an attempt the account's throttle refused (casework.login_throttle) is
    answered 429 with Retry-After, the form showing the wait in French."""

    template_name = "registration/login.html"
    authentication_form = LoginForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.throttled_for:
            response.status_code = 429
            response["Retry-After"] = str(form.throttled_for)
        return response
