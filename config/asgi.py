"""ASGI entry point: HTTP (Django) and WebSocket (live notifications, notifications.routing)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()  # before importing anything that touches models

from django.conf import settings  # noqa: E402

if settings.TIMERS_IN_PROCESS:
    # Embedded mode (make demo): the server process also fires the response deadlines.
    from workflows import timers  # noqa: E402

    timers.start_in_background(settings.TIMERS_INTERVAL)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import URLRouter  # noqa: E402

from notifications.origin import OriginValidator  # noqa: E402
from notifications.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Session cookie authentication, behind the origin check: scheme, host and port of the page
        # must be this site's, as for a form (notifications.origin); any other origin is refused.
        "websocket": OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)


def _freeze_startup_objects() -> None:
    """A server process lives long: what it loads at start-up (Django, the apps, the URLconf) never
    dies. Freezing those objects and collecting less often keeps the collector out of the event
    loop's way: with CPython's defaults, full passes paused it ~270 ms at a time with 1,000 open
    sockets, several times a minute (`make bench`, docs/performance.md)."""
    import gc

    from django.urls import get_resolver

    get_resolver().check()  # load the URLconf now rather than at the first request
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 100)


_freeze_startup_objects()
