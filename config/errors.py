"""The server error handler (`handler500` of config/urls.py): a database with no connection to give
right now is a 503 page asking to try again shortly, with `Retry-After`, never a 500.

Django calls `server_error` for every exception that neither a view nor a middleware handled,
from inside its `except` block: the exception is `sys.exc_info()`. Two of them mean "too busy,
come back in a moment" rather than "broken":
- the connection pool found no free connection within DATABASE_POOL_TIMEOUT seconds
  (`psycopg_pool.PoolTimeout`);
- PostgreSQL refused a new connection (SQLSTATE 53300: too many connections for the role or the
  database, too many clients, the last slots reserved). A refused connection carries no SQLSTATE
  in psycopg, only the server's message, in English or, with a French `lc_messages`, in French.

Both happen when the request asks for its connection, at its first query (a request keeps it to
its end): nothing of the request was done, and the page can say so. The answer is a full page,
a fragment for htmx (static/js/app.js shows it above the page's content) or JSON for a client
that asks for JSON. It is rendered without the request's context processors, which would read
the session and the user's roles from the database.

With DJANGO_DEBUG, Django shows its technical page instead and never calls this handler.
"""

import sys

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.views import defaults
from django.views.decorators.csrf import requires_csrf_token

# Seconds after which a client may try again. Short: the pool waits DATABASE_POOL_TIMEOUT seconds
# for a connection before giving up, a burst of claims lasts a second or two.
RETRY_AFTER_SECONDS = 5

# The server's refusals of a new connection (SQLSTATE 53300), in English and in French.
_REFUSALS = (
    "too many connections",
    "too many clients",
    "remaining connection slots are reserved",
    "trop de connexions",
    "trop de clients",
    "emplacements de connexions restants sont réservés",
)


def database_saturated(error: BaseException | None) -> bool:
    """Whether `error`, or an error it was raised from, says the database has no connection to give
    now. Django wraps the driver's errors (django.db.utils.OperationalError from psycopg's)."""
    try:
        import psycopg
        from psycopg_pool import PoolTimeout
    except ImportError:  # embedded mode without the PostgreSQL driver
        return False
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, PoolTimeout):
            return True
        if isinstance(error, psycopg.Error):
            if error.sqlstate == "53300":
                return True
            if isinstance(error, psycopg.OperationalError) and any(
                refusal in str(error) for refusal in _REFUSALS
            ):
                return True
        error = error.__cause__ or error.__context__
    return False


def service_unavailable(request) -> HttpResponse:
    """The 503 answer: the page, an htmx fragment, or JSON."""
    retry_url = request.get_full_path() if request.method in ("GET", "HEAD") else ""
    context = {"SITE_TITLE": settings.SITE_TITLE, "retry_after": RETRY_AFTER_SECONDS, "retry_url": retry_url}
    if request.headers.get("HX-Request") == "true":
        response = HttpResponse(render_to_string("partials/service_unavailable.html", context), status=503)
    elif request.get_preferred_type(["text/html", "application/json"]) == "application/json":
        response = JsonResponse(
            {
                "error": "service_unavailable",
                "message": _(
                    "Too many people are using the service right now: your request was not processed "
                    "and nothing was saved. Try again in a few seconds."
                ),
                "retry_after": RETRY_AFTER_SECONDS,
            },
            status=503,
            json_dumps_params={"ensure_ascii": False},
        )
    else:
        response = HttpResponse(render_to_string("503.html", context), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


@requires_csrf_token
def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    if database_saturated(sys.exc_info()[1]):
        return service_unavailable(request)
    return defaults.server_error(request, template_name)
