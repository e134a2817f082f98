"""The notifications socket at its edges: frames outside the protocol, origins, sockets per user."""

import logging

import pytest

from tests.test_notifications_live import connect, make_user, run_async

pytestmark = pytest.mark.django_db(transaction=True)

CLOSE_BAD_FRAME = 4400  # notifications.consumers
MAX_FRAME = 4096

BAD_FRAMES = {
    "not JSON": {"text_data": "hello?"},
    "truncated JSON": {"text_data": '{"type": "hello", "last_id": '},
    "binary frame": {"bytes_data": b'{"type": "ping"}'},
    "deeply nested JSON": {"text_data": "[" * 3000 + "]" * 3000},
    "nested under a key": {"text_data": '{"type": "ping", "x": {"y": {"z": 1}}}'},
    "too long": {"text_data": '{"type": "ping", "pad": "' + "x" * MAX_FRAME + '"}'},
    "a JSON list": {"text_data": '[{"type": "ping"}]'},
    "a JSON number": {"text_data": "12"},
    "no type": {"text_data": '{"last_id": 3}'},
    "a non-string type": {"text_data": '{"type": ["hello"]}'},
    "NaN": {"text_data": '{"type": "hello", "last_id": NaN}'},
    "negative last id": {"text_data": '{"type": "hello", "last_id": -1}'},
    "fractional last id": {"text_data": '{"type": "hello", "last_id": 2.5}'},
    "text last id": {"text_data": '{"type": "hello", "last_id": "7"}'},
    "boolean last id": {"text_data": '{"type": "hello", "last_id": true}'},
    "last id beyond a bigint": {"text_data": '{"type": "hello", "last_id": 9223372036854775808}'},
    "huge last id": {"text_data": '{"type": "hello", "last_id": 1' + "0" * 4000 + "}"},
}


@pytest.mark.parametrize("frame", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_a_frame_outside_the_protocol_closes_the_socket_with_4400_and_no_traceback(frame, caplog):
    @run_async
    async def scenario():
        communicator, connected, _ = await connect(await make_user())
        assert connected
        await communicator.send_to(**frame)
        # Before: the consumer raised (json.loads, its binary-frame ValueError, RecursionError) and
        # the communicator re-raises what the application raised; daphne logged it and closed 1011.
        assert await communicator.receive_output(timeout=3) == {
            "type": "websocket.close",
            "code": CLOSE_BAD_FRAME,
        }
        await communicator.disconnect()

    with caplog.at_level(logging.INFO):
        scenario()
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING or record.exc_info]
    assert any("bad frame" in record.getMessage() for record in caplog.records)


def test_the_protocol_still_works_and_ignores_unknown_types():
    @run_async
    async def scenario():
        communicator, connected, _ = await connect(await make_user())
        assert connected
        await communicator.send_json_to({"type": "from-a-newer-page"})
        await communicator.send_json_to({"type": "hello", "last_id": None})
        await communicator.send_json_to({"type": "hello", "last_id": 0})
        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from(timeout=3) == {"type": "pong"}
        await communicator.disconnect()

    scenario()


# --- Origin: scheme, host and port, as Django's CSRF check --------------------------------------------

SERVER = "127.0.0.1:8000"  # the server http://127.0.0.1:8000
DEMO = {"PRODUCTION": False, "ALLOWED_HOSTS": ["127.0.0.1", "localhost"], "CSRF_TRUSTED_ORIGINS": []}
PRODUCTION = {
    "PRODUCTION": True,
    "SITE_URL": "https://tds.example.fr",
    "ALLOWED_HOSTS": ["tds.example.fr", "127.0.0.1"],
    "CSRF_TRUSTED_ORIGINS": [],
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
}
ORIGINS = {
    # embedded mode: the connection's own scheme and Host
    "own origin": (DEMO, SERVER, "http://127.0.0.1:8000", {}, True),
    "another port of the host": (DEMO, SERVER, "http://127.0.0.1:9999", {}, False),
    "the other scheme on another port": (DEMO, SERVER, "https://127.0.0.1:8121", {}, False),
    "the other scheme on the same port": (DEMO, SERVER, "https://127.0.0.1:8000", {}, False),
    "the default port of the host": (DEMO, SERVER, "http://127.0.0.1", {}, False),
    "another allowed host": (DEMO, SERVER, "http://localhost:8000", {}, False),
    "a host outside ALLOWED_HOSTS that names itself": (
        DEMO,
        "evil.example",
        "http://evil.example",
        {},
        False,
    ),
    "an origin with a path": (DEMO, SERVER, "http://127.0.0.1:8000/page", {}, False),
    "a malformed origin": (DEMO, SERVER, "http://[127.0.0.1:8000", {}, False),
    "a null origin": (DEMO, SERVER, "null", {}, False),
    "no origin": (DEMO, SERVER, None, {}, False),
    "no host": (DEMO, None, "http://127.0.0.1:8000", {}, False),
    "https through a proxy that says so": (
        {**DEMO, "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")},
        SERVER,
        "https://127.0.0.1:8000",
        {b"x-forwarded-proto": b"https"},
        True,
    ),
    "http through a proxy that says https": (
        {**DEMO, "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")},
        SERVER,
        "http://127.0.0.1:8000",
        {b"x-forwarded-proto": b"https"},
        False,
    ),
    "a forwarded scheme nobody trusts": (
        DEMO,
        SERVER,
        "https://127.0.0.1:8000",
        {b"x-forwarded-proto": b"https"},
        False,
    ),
    "a trusted origin": (
        {**DEMO, "CSRF_TRUSTED_ORIGINS": ["https://tds.example.fr"]},
        SERVER,
        "https://tds.example.fr",
        {},
        True,
    ),
    "a subdomain of a trusted wildcard": (
        {**DEMO, "CSRF_TRUSTED_ORIGINS": ["https://*.example.fr"]},
        SERVER,
        "https://app.example.fr",
        {},
        True,
    ),
    "a trusted wildcard, the other scheme": (
        {**DEMO, "CSRF_TRUSTED_ORIGINS": ["https://*.example.fr"]},
        SERVER,
        "http://app.example.fr",
        {},
        False,
    ),
    "a trusted wildcard, another port": (
        {**DEMO, "CSRF_TRUSTED_ORIGINS": ["https://*.example.fr"]},
        SERVER,
        "https://app.example.fr:8443",
        {},
        False,
    ),
    # production: the origin of SITE_URL (and CSRF_TRUSTED_ORIGINS), whatever the proxy forwards
    "production: SITE_URL": (PRODUCTION, "tds.example.fr", "https://tds.example.fr", {}, True),
    "production: SITE_URL with its default port": (
        PRODUCTION,
        "tds.example.fr",
        "https://tds.example.fr:443",
        {},
        True,
    ),
    "production: SITE_URL over http": (
        PRODUCTION,
        "tds.example.fr",
        "http://tds.example.fr",
        {b"x-forwarded-proto": b"http"},
        False,
    ),
    "production: another port": (PRODUCTION, "tds.example.fr", "https://tds.example.fr:8443", {}, False),
    "production: the connection's own origin": (PRODUCTION, SERVER, "http://127.0.0.1:8000", {}, False),
}


@pytest.mark.parametrize(
    ("overrides", "host", "origin", "extra", "accepted"), ORIGINS.values(), ids=ORIGINS.keys()
)
def test_the_socket_opens_only_from_this_sites_origin(settings, overrides, host, origin, extra, accepted):
    for name, value in overrides.items():
        setattr(settings, name, value)
    headers = [(b"origin", origin.encode())] if origin else []
    headers += [(b"host", host.encode())] if host else []
    headers += list(extra.items())

    @run_async
    async def scenario():
        communicator, connected, _ = await connect(await make_user(), origin=None, host=None, extra=headers)
        if connected:
            await communicator.disconnect()
        return connected

    assert scenario() is accepted
