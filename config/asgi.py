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
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from notifications.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Session cookie authentication, behind the allowed-origin check (foreign origins refused).
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
