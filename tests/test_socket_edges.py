"""The notifications socket at its edges: frames outside the protocol, origins, sockets per user."""

import logging

import pytest

from tests.factories import UserFactory
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


# --- Sockets per user ------------------------------------------------------------------------------

CLOSE_TOO_MANY = 4429  # notifications.consumers


async def _open(user):
    """A socket of `user`: (communicator, True) when it stays open, (communicator, close code) when
    the server accepted it and closed it at once."""
    communicator, connected, _ = await connect(user)
    assert connected
    await communicator.send_json_to({"type": "ping"})
    answer = await communicator.receive_output(timeout=3)
    if answer["type"] == "websocket.close":
        return communicator, answer.get("code")
    assert answer == {"type": "websocket.send", "text": '{"type": "pong"}'}
    return communicator, True


def test_a_user_holds_at_most_the_cap_of_sockets_and_gets_a_place_back_when_one_closes(settings):
    settings.WS_MAX_SOCKETS_PER_USER = 3

    @run_async
    async def scenario():
        user, other = await make_user(), await make_user()
        opened = [await _open(user) for _ in range(3)]
        assert [state for _, state in opened] == [True, True, True]
        # One more: accepted, then closed with 4429 (a refused handshake would reach the page as 1006).
        _, state = await _open(user)
        assert state == CLOSE_TOO_MANY
        _, state = await _open(other)  # the cap is per user
        assert state is True
        await opened[0][0].disconnect()
        _, state = await _open(user)  # the place of the closed socket is free again
        assert state is True
        _, state = await _open(user)
        assert state == CLOSE_TOO_MANY

    scenario()


def test_sockets_left_counted_by_a_dead_process_expire(settings):
    """A process killed without closing its sockets leaves them counted; they expire after QUOTA_TTL
    instead of keeping the user out for good. Needs Redis (in one process nothing outlives it)."""
    from django.conf import settings as django_settings

    from tests.test_services_backends import _require

    _require(bool(django_settings.REDIS_URL), "REDIS_URL")
    import time

    from channels.layers import get_channel_layer

    from notifications import quota

    settings.WS_MAX_SOCKETS_PER_USER = 2

    @run_async
    async def scenario():
        user = await make_user()
        layer = get_channel_layer()
        key = quota._key(layer, user.pk)
        server = quota._server(layer, key)
        # What a killed daphne leaves: two entries nobody renews, one still within its TTL.
        await server.zadd(key, {"dead.process!a": time.time() - 1, "dead.process!b": time.time() + 60})
        _, state = await _open(user)
        assert state is True  # the expired entry was dropped, the live one still counts
        _, state = await _open(user)
        assert state == CLOSE_TOO_MANY
        await server.delete(key)

    scenario()


def test_open_sockets_keep_their_place_while_they_live(settings, monkeypatch):
    """Each process renews its sockets' entries: an open socket never expires (TTL shortened here)."""
    from django.conf import settings as django_settings

    from tests.test_services_backends import _require

    _require(bool(django_settings.REDIS_URL), "REDIS_URL")
    import asyncio

    from notifications import quota

    monkeypatch.setattr(quota, "QUOTA_TTL", 0.6)
    monkeypatch.setattr(quota, "QUOTA_REFRESH", 0.2)
    settings.WS_MAX_SOCKETS_PER_USER = 1

    @run_async
    async def scenario():
        user = await make_user()
        first, state = await _open(user)
        assert state is True
        await asyncio.sleep(1.5)  # more than twice the TTL: alive only if renewed
        _, state = await _open(user)
        assert state == CLOSE_TOO_MANY
        await first.disconnect()
        _, state = await _open(user)
        assert state is True

    scenario()


# --- Against real daphne processes -------------------------------------------------------------------


def _closed_code(error) -> int | None:
    return error.rcvd.code if error.rcvd is not None else None


def test_a_real_server_refuses_bad_frames_and_foreign_ports_cleanly(tmp_path):
    """Through daphne as a browser reaches it: each bad frame ends in close code 4400 (not 1011) and
    the server's log holds no traceback; a page on another port of the host cannot open the socket."""
    import asyncio

    from websockets.exceptions import ConnectionClosed, InvalidStatus

    from tests import live

    cookie = live.session_for(UserFactory())
    port = live.free_port()

    async def scenario():
        codes = []
        for frame in ("hello?", b"\x00\x01", "[" * 3000 + "]" * 3000, '{"type": "hello", "last_id": -1}'):
            async with live.ws_connect(port, cookie) as socket:
                await socket.send(frame)
                try:
                    await asyncio.wait_for(socket.recv(), timeout=5)
                except ConnectionClosed as error:
                    codes.append(_closed_code(error))
        async with live.ws_connect(port, cookie) as socket:  # the protocol itself still works
            await socket.send('{"type": "ping"}')
            pong = await asyncio.wait_for(socket.recv(), timeout=5)
        from websockets.asyncio.client import connect as ws

        try:
            async with ws(
                f"ws://127.0.0.1:{port}/ws/notifications/",
                additional_headers={"Cookie": cookie},
                origin=f"http://127.0.0.1:{live.free_port()}",
            ):
                foreign = "opened"
        except InvalidStatus as error:
            foreign = error.response.status_code
        return codes, pong, foreign

    log = tmp_path / "daphne.log"
    with live.daphne(port, live.server_env(), log):
        codes, pong, foreign = asyncio.run(scenario())
    assert codes == [CLOSE_BAD_FRAME] * 4
    assert pong == '{"type": "pong"}'
    assert foreign == 403
    assert "Traceback" not in log.read_text(errors="replace")


def test_the_socket_cap_holds_across_two_servers(tmp_path):
    """Two daphne processes share the count through Redis: the user's places are taken wherever the
    sockets are, a place freed on one server is free on the other, and servers stopped with sockets
    still open (a restart) leave nothing counted."""
    import asyncio
    import contextlib
    import os
    import uuid

    import redis
    from django.conf import settings as django_settings
    from websockets.exceptions import ConnectionClosed

    from tests import live
    from tests.test_services_backends import _require

    _require(bool(django_settings.REDIS_URL), "REDIS_URL")
    user = UserFactory()
    cookie = live.session_for(user)
    port_a, port_b = live.free_port(), live.free_port()
    # A prefix of this run's own: nothing left by an earlier run counts.
    prefix = f"tds-cap-{uuid.uuid4().hex[:8]}"
    env = live.server_env(WS_MAX_SOCKETS_PER_USER=3, CHANNEL_PREFIX=prefix)
    key = f"{prefix}{os.environ.get('PYTEST_XDIST_WORKER', '')}:sockets:{user.pk}"
    counted = redis.Redis.from_url(django_settings.REDIS_URL)

    async def state(socket):
        """The pong of an open socket, or the code the server closed it with."""
        try:
            await socket.send('{"type": "ping"}')
            return await asyncio.wait_for(socket.recv(), timeout=5)
        except ConnectionClosed as error:
            return _closed_code(error)

    async def scenario(servers):
        held = [await live.ws_connect(port, cookie) for port in (port_a, port_a, port_b)]
        states = [await state(socket) for socket in held]
        async with live.ws_connect(port_b, cookie) as extra_b, live.ws_connect(port_a, cookie) as extra_a:
            over = [await state(extra_b), await state(extra_a)]
        await held[0].close()  # a place freed on server A...
        await asyncio.sleep(0.2)
        held[0] = await live.ws_connect(port_b, cookie)  # ...is taken on server B
        after = await state(held[0])
        before_stop = counted.zcard(key)
        await asyncio.to_thread(servers.close)  # both servers stop (SIGTERM), the sockets still open
        return states, over, after, before_stop

    with contextlib.ExitStack() as servers:
        servers.enter_context(live.daphne(port_a, env, tmp_path / "a.log"))
        servers.enter_context(live.daphne(port_b, env, tmp_path / "b.log"))
        states, over, after, before_stop = asyncio.run(scenario(servers.pop_all()))
    pong = '{"type": "pong"}'
    assert states == [pong] * 3
    assert over == [CLOSE_TOO_MANY, CLOSE_TOO_MANY]
    assert after == pong
    assert before_stop == 3
    assert counted.zcard(key) == 0  # each server removed its open sockets as it stopped
