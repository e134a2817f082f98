"""The origin check of the notifications socket: the page that opens it must be one of this site's.

A browser sends the user's cookies with a WebSocket handshake from any page, and the handshake is
not subject to the same-origin policy: the `Origin` header is the only sign of which page opened
it. Channels' `AllowedHostsOriginValidator` compares host names only, so a page on another port or
scheme of an allowed host (`http://127.0.0.1:9999`, `https://127.0.0.1:8121` beside a server on
`http://127.0.0.1:8000`) could open the socket with the user's session. Here the scheme, host and
port must match exactly, as Django's CSRF check matches the `Origin` of a form:

- in production, the origin of SITE_URL (the address the users are given; behind the reverse proxy
  the connection itself does not reliably say which scheme the browser used);
- in the embedded mode, the connection's own origin: its scheme and its `Host` header, the host
  validated against ALLOWED_HOSTS as `request.get_host()` does. The scheme is `https` when the
  connection is TLS (an ASGI server that says so in the scope) or when SECURE_PROXY_SSL_HEADER is
  set and the proxy's header says so, as `request.is_secure()` decides;
- in both modes, CSRF_TRUSTED_ORIGINS: an exact entry, or a wildcard one (`https://*.example.fr`)
  matched with `is_same_domain`, scheme and port included, as Django does.

No `Origin` header, `null` (a sandboxed frame, a file) or a malformed one: refused. Ports are
compared once the default port of the scheme is filled in (`https://h` is `https://h:443`).
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            try:
                return value.decode("latin1")
            except UnicodeDecodeError:  # pragma: no cover - latin1 decodes every byte
                return None
    return None


def normalise(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, the default port filled in; None when it is not an
    http(s) origin (no path, no user, no query)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        return None
    return parts.scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[parts.scheme]


def _allowed_hosts() -> list[str]:
    hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not hosts:  # as HttpRequest.get_host()
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def _is_secure(scope) -> bool:
    """As `HttpRequest.is_secure()`: the proxy's header when SECURE_PROXY_SSL_HEADER is set and the
    header present, else the connection's own scheme (daphne puts none in a WebSocket scope: ws)."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, expected = settings.SECURE_PROXY_SSL_HEADER
        name = meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin1")
        value = _header(scope, name)
        if value is not None:
            return value.split(",", 1)[0].strip() == expected
    return scope.get("scheme") in ("wss", "https")


def own_origin(scope) -> str | None:
    """The origin of the connection itself (scheme and `Host`), when its host is allowed."""
    host = _header(scope, b"host")
    if not host:
        return None
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return None
    return f"{'https' if _is_secure(scope) else 'http'}://{host}"


def _site_origin() -> str:
    parts = urlsplit(settings.SITE_URL)
    return f"{parts.scheme}://{parts.netloc}"


def origin_allowed(scope) -> bool:
    origin = _header(scope, b"origin")
    if not origin:
        return False
    requested = normalise(origin)
    if requested is None:
        return False
    good = [_site_origin()] if settings.PRODUCTION else [own_origin(scope)]
    good += [entry for entry in settings.CSRF_TRUSTED_ORIGINS if "*" not in entry]
    if any(normalise(entry) == requested for entry in good if entry):
        return True
    netloc = urlsplit(origin.strip()).netloc.lower()
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in entry:
            pattern = urlsplit(entry)
            if pattern.scheme == requested[0] and is_same_domain(netloc, pattern.netloc.lstrip("*").lower()):
                return True
    return False


class OriginValidator:
    """ASGI middleware: the WebSocket handshake goes on only from an allowed origin; otherwise it
    is refused before it completes (daphne answers 403), so the foreign page learns nothing."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("OriginValidator guards WebSocket connections only")
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
