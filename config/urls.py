from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import set_language

from casework.views_auth import LoginView

admin.site.site_header = "Territoires de solutions — administration"
# The admin reads every case without the confidentiality rule: platform administrators only,
# whatever staff flags or model permissions someone may be given.
admin.site.has_permission = lambda request: request.user.is_active and request.user.is_platform_admin
admin.site.site_title = "Territoires de solutions"

# A database out of connections is a 503 page (try again shortly), any other failure the 500 page.
handler500 = "config.errors.server_error"

urlpatterns = [
    path("connexion/", LoginView.as_view(), name="login"),
    path("deconnexion/", auth_views.LogoutView.as_view(), name="logout"),
    path("langue/", login_not_required(set_language), name="set_language"),
    # One login page for everyone: the admin's own login form redirects to ours.
    path(
        "admin/login/",
        login_not_required(RedirectView.as_view(pattern_name="login", query_string=True)),
        name="admin_login_redirect",
    ),
    path("admin/", admin.site.urls),
    path("administration/", include("audit.urls")),
    path("", include("cockpit.urls")),
    path("", include("notifications.urls")),
    path("", include("workflows.urls")),
    path("", include("casework.urls")),
]
