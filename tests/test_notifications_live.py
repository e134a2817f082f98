"""Live notifications over WebSocket: the database is the source of truth, the socket the doorbell."""

import asyncio
import functools
import random

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import transaction

from config.asgi import application
from notifications.delivery import site_group
from notifications.models import Notification
from notifications.services import notify
from tests import live
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


# How long the tasks a test leaves behind (its sockets' consumers) get to finish once cancelled.
CLEANUP_SECONDS = 5


def run_async(coroutine_function):
    """Run an async test body from a plain pytest test (no asyncio plugin needed), in an event loop
    of its own. At the end the tasks it left (the consumers of its sockets) are cancelled and given
    CLEANUP_SECONDS, then left behind: with Redis, a consumer cancelled in the middle of its
    blocking read of the channel sometimes never finishes (redis-py swallows the cancellation and
    reads again, seen about once in 200 sockets), and `asyncio.run` would wait for it forever."""

    @functools.wraps(coroutine_function)
    def wrapper(*args, **kwargs):
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coroutine_function(*args, **kwargs))
        finally:
            left = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=CLEANUP_SECONDS))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    return wrapper


# A page of the test server opening its socket: the browser sends the page's origin and the host
# it connects to; the origin check compares scheme, host and port (notifications.origin).
ORIGIN = (b"origin", b"http://testserver")
HOST = (b"host", b"testserver")


@sync_to_async
def session_cookie(user) -> bytes:
    return live.session_for(user).encode()


async def connect(user=None, origin=ORIGIN, host=HOST, extra=()):
    headers = [header for header in (origin, host) if header] + list(extra)
    if user is not None:
        headers.append((b"cookie", await session_cookie(user)))
    communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
    connected, code = await communicator.connect(timeout=3)
    return communicator, connected, code


@sync_to_async
def make_user(**kwargs):
    return UserFactory(**kwargs)


@sync_to_async
def send(user, text="Nouvelle demande", rollback=False):
    try:
        with transaction.atomic():
            notify(event_type="request_routed", recipients=[user], message=text)
            if rollback:
                raise RuntimeError("rolled back")
    except RuntimeError:
        pass


@sync_to_async
def ids_of(user):
    return sorted(Notification.objects.filter(recipient=user).values_list("pk", flat=True))


@run_async
async def test_anonymous_and_foreign_origin_are_refused():
    communicator, connected, _ = await connect(None)
    assert not connected
    user = await make_user()
    communicator, connected, _ = await connect(user, origin=(b"origin", b"http://evil.example"))
    assert not connected
    communicator, connected, _ = await connect(user, origin=None)
    assert not connected


@run_async
async def test_user_without_the_charter_is_refused():
    communicator, connected, code = await connect(await make_user(charter=False))
    assert not connected


@run_async
async def test_a_notification_arrives_after_commit_and_none_after_rollback():
    user = await make_user()
    communicator, connected, _ = await connect(user)
    assert connected
    await communicator.send_json_to({"type": "hello", "last_id": 0})
    await send(user, rollback=True)
    assert await communicator.receive_nothing(timeout=0.3)
    await send(user, "Demande acceptée")
    message = await communicator.receive_json_from(timeout=3)
    assert message["type"] == "notification" and message["text"] == "Demande acceptée"
    await communicator.disconnect()


@run_async
async def test_reconnection_replays_what_was_missed_and_nothing_twice():
    user = await make_user()
    communicator, _, _ = await connect(user)
    await communicator.send_json_to({"type": "hello", "last_id": 0})
    await send(user, "premier")
    first = await communicator.receive_json_from(timeout=3)
    await communicator.disconnect()
    # Offline for a while: two notifications are written.
    await send(user, "deuxième")
    await send(user, "troisième")
    communicator, _, _ = await connect(user)
    await communicator.send_json_to({"type": "hello", "last_id": first["id"]})
    replayed = [await communicator.receive_json_from(timeout=3) for _ in range(2)]
    assert [m["text"] for m in replayed] == ["deuxième", "troisième"]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@run_async
async def test_a_layer_that_drops_ten_percent_of_rings_loses_nothing(monkeypatch):
    """Each ring makes the socket read the database after its last id: a lost ring is caught up by
    the next one (and by the hello of a reconnection)."""
    user = await make_user()
    layer = get_channel_layer()
    original = layer.group_send
    rng = random.Random(7)

    async def lossy_group_send(group, message):
        if rng.random() < 0.10:
            return None
        return await original(group, message)

    monkeypatch.setattr(layer, "group_send", lossy_group_send)
    communicator, _, _ = await connect(user)
    await communicator.send_json_to({"type": "hello", "last_id": 0})
    for index in range(40):
        await send(user, f"n°{index}")
    received = []
    while not await communicator.receive_nothing(timeout=0.5):
        received.append(await communicator.receive_json_from(timeout=1))
    await communicator.disconnect()
    # A final reconnection catches up whatever the last lost rings left behind.
    communicator, _, _ = await connect(user)
    await communicator.send_json_to({"type": "hello", "last_id": max((m["id"] for m in received), default=0)})
    while not await communicator.receive_nothing(timeout=0.5):
        received.append(await communicator.receive_json_from(timeout=1))
    await communicator.disconnect()
    got = [m["id"] for m in received]
    assert sorted(got) == await ids_of(user)
    assert len(got) == len(set(got))  # nothing twice


@run_async
async def test_a_step_does_not_wait_for_the_layer_to_deliver_its_ring(monkeypatch):
    """In the server a view's rings are handed to the event loop (notifications.delivery): a slow
    or unreachable layer does not hold the user's request up, and the ring still arrives."""
    user = await make_user()
    layer = get_channel_layer()
    original = layer.group_send
    released = asyncio.Event()

    async def slow_group_send(group, message):
        await released.wait()
        return await original(group, message)

    communicator, _, _ = await connect(user)
    await communicator.send_json_to({"type": "hello", "last_id": 0})
    await communicator.send_json_to({"type": "ping"})  # answered once the hello is handled
    assert await communicator.receive_json_from(timeout=3) == {"type": "pong"}
    monkeypatch.setattr(layer, "group_send", slow_group_send)
    from notifications import delivery

    original_hint = delivery.hint

    async def slow_hint(*args):  # the ring's hint (Redis pub/sub) is held up as well
        await released.wait()
        return await original_hint(*args)

    monkeypatch.setattr(delivery, "hint", slow_hint)
    await asyncio.wait_for(send(user, "sans attendre"), timeout=5)
    assert await communicator.receive_nothing(timeout=0.3)
    released.set()
    message = await communicator.receive_json_from(timeout=3)
    assert message["text"] == "sans attendre"
    await communicator.disconnect()


@run_async
async def test_deactivation_closes_the_socket():
    user = await make_user()
    communicator, _, _ = await connect(user)
    await communicator.send_json_to({"type": "hello", "last_id": 0})

    @sync_to_async
    def deactivate():
        user.is_active = False
        user.save()

    await deactivate()
    message = await communicator.receive_json_from(timeout=1)
    assert message == {"type": "revoked"}
    closed = await communicator.receive_output(timeout=1)
    assert closed["type"] == "websocket.close"


def test_logout_closes_the_open_sockets(client):
    user = UserFactory()
    client.force_login(user)

    async def scenario():
        communicator, connected, _ = await connect(user)
        assert connected
        await communicator.send_json_to({"type": "hello", "last_id": 0})
        await sync_to_async(client.post)("/deconnexion/")
        assert await communicator.receive_json_from(timeout=1) == {"type": "revoked"}

    run_async(scenario)()


@sync_to_async
def board_world():
    """Two pilot sites, an animator on each, and an active case of the first site's referent."""
    from tests.factories import CaseFactory, PilotSiteFactory, SiteAnimatorFactory

    site, other_site = PilotSiteFactory(), PilotSiteFactory()
    case = CaseFactory(site=site, active=True)
    return {
        "case": case,
        "animator": SiteAnimatorFactory(site=site).user,
        "other_animator": SiteAnimatorFactory(site=other_site).user,
        "referent": case.referent,
    }


@sync_to_async
def record_a_need(case):
    from casework import services as case_services

    case_services.need_create(actor=case.referent, case=case, category="housing", description="Logement")


@run_async
async def test_board_events_reach_the_animators_of_the_site_only():
    world = await board_world()
    sockets = {}
    for name in ("animator", "other_animator", "referent"):
        sockets[name], connected, _ = await connect(world[name])
        assert connected
        await sockets[name].send_json_to({"type": "hello", "last_id": 0})
    await record_a_need(world["case"])
    board = await sockets["animator"].receive_json_from(timeout=3)
    assert board == {"type": "board", "site": world["case"].site_id, "case": str(world["case"].public_id)}
    assert await sockets["other_animator"].receive_nothing(timeout=0.3)
    assert await sockets["referent"].receive_nothing(timeout=0.1)
    for socket in sockets.values():
        await socket.disconnect()


@run_async
async def test_an_animator_removed_from_the_site_stops_receiving_its_board_at_once():
    from casework.models import SiteAnimator

    world = await board_world()
    communicator, connected, _ = await connect(world["animator"])
    assert connected
    await communicator.send_json_to({"type": "hello", "last_id": 0})
    group = site_group(world["case"].site_id)
    layer = get_channel_layer()
    members = getattr(layer, "groups", None)  # the in-memory layer shows its groups; Redis does not
    if members is not None:
        assert len(members.get(group, {})) == 1
    await sync_to_async(SiteAnimator.objects.filter(user=world["animator"]).delete)()
    await record_a_need(world["case"])
    assert await communicator.receive_nothing(timeout=0.5)
    if members is not None:  # the socket left the site's group, not only filtered its events out
        assert not members.get(group)
    await communicator.disconnect()


@run_async
async def test_losing_access_to_a_case_stops_its_notifications_within_a_second():
    import asyncio

    from casework.models import SiteAnimator

    world = await board_world()
    animator, case = world["animator"], world["case"]

    @sync_to_async
    def notify_about(case, text):
        notify(event_type="escalation_raised", recipients=[animator], message=text, case=case)

    communicator, _, _ = await connect(animator)
    await communicator.send_json_to({"type": "hello", "last_id": 0})
    await notify_about(case, "Escalade")
    assert (await communicator.receive_json_from(timeout=3))["text"] == "Escalade"
    await sync_to_async(SiteAnimator.objects.filter(user=animator).delete)()
    await asyncio.sleep(1.05)
    await notify_about(case, "Après la perte du site")
    await notify_about(None, "Sans dossier")
    # The socket still works, but says nothing about the case the user no longer sees.
    assert (await communicator.receive_json_from(timeout=3))["text"] == "Sans dossier"
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


# --- A ring that carries its notification ---------------------------------------------------------


@pytest.fixture
def database_reads(monkeypatch):
    """How many times the sockets read the user's rows from the database (selectors.after)."""
    from notifications import selectors

    calls = []
    original = selectors.after

    def counted(user, last_id):
        calls.append(last_id)
        return original(user, last_id)

    monkeypatch.setattr(selectors, "after", counted)
    return calls


async def hello(user, last_id=0):
    """A socket of `user` that said hello (and read the database once), with fresh rights."""
    from notifications import rights

    communicator, connected, _ = await connect(user)
    assert connected
    await communicator.send_json_to({"type": "hello", "last_id": last_id})
    await communicator.send_json_to({"type": "ping"})  # answered once the hello is handled
    assert await communicator.receive_json_from(timeout=3) == {"type": "pong"}
    await rights.refresh()
    return communicator


@sync_to_async
def database_messages(user):
    from notifications import selectors

    return selectors.after(user, 0)[0]


@run_async
async def test_a_ring_with_nothing_missing_before_it_is_sent_without_reading_the_database(database_reads):
    """The ring names the user's previous notification; the socket sent it, its rights are fresh:
    the message goes as it came, the same the database read would have sent."""
    from notifications import rights

    world = await board_world()
    referent, case = world["referent"], world["case"]

    @sync_to_async
    def notify_about(text, case=None):
        notify(event_type="escalation_decided", recipients=[referent], message=text, case=case)

    communicator = await hello(referent)
    database_reads.clear()
    received = []
    for text, about in (("Sans dossier", None), ("Son dossier", case), ("Encore", case)):
        await rights.refresh()
        await notify_about(text, about)
        received.append(await communicator.receive_json_from(timeout=3))
    assert [message["text"] for message in received] == ["Sans dossier", "Son dossier", "Encore"]
    assert database_reads == []
    assert received == await database_messages(referent)
    await communicator.disconnect()


@run_async
async def test_a_ring_after_a_lost_one_reads_the_database_nothing_lost_nothing_twice(database_reads):
    """The first ring is dropped: the second names a previous notification the socket never sent,
    so the socket reads the database (both, in order); the third goes as it came again."""
    from notifications import delivery, rights

    user = await make_user()
    original = delivery._deliver
    dropped = []

    async def drop_the_first(layer, group, message, hint_user=None):
        if message["type"] == "notify.poke" and not dropped:
            dropped.append(message["id"])  # its hint and its ring through the queue
            return None
        return await original(layer, group, message, hint_user)

    communicator = await hello(user)
    database_reads.clear()
    delivery._deliver = drop_the_first
    try:
        received = []
        await send(user, "perdu")
        await rights.refresh()
        await send(user, "suivant")
        received += [await communicator.receive_json_from(timeout=3) for _ in range(2)]
        assert len(database_reads) == 1
        await rights.refresh()
        await send(user, "troisième")
        received.append(await communicator.receive_json_from(timeout=3))
    finally:
        delivery._deliver = original
    assert [message["text"] for message in received] == ["perdu", "suivant", "troisième"]
    assert received[0]["id"] == dropped[0]
    assert len(database_reads) == 1
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@run_async
async def test_rights_that_no_longer_allow_it_send_no_payload(database_reads):
    """Deactivated without the signal (no revocation ring): the rights re-read say so, the ring's
    message is not sent, the database read revokes the socket."""
    from casework.models import User
    from notifications import rights

    user = await make_user()
    communicator = await hello(user)
    database_reads.clear()
    await sync_to_async(User.objects.filter(pk=user.pk).update)(is_active=False)
    await rights.refresh()
    await asyncio.sleep(1.05)  # the socket's own copy of the user (RIGHTS_TTL) is stale too
    await send(user, "ne doit pas partir")
    assert await communicator.receive_json_from(timeout=3) == {"type": "revoked"}
    assert len(database_reads) == 0  # refused before reading any row
    await communicator.disconnect()


@run_async
async def test_a_case_the_fresh_roles_do_not_show_is_left_to_the_database(database_reads):
    """The animator lost the site (no signal reaches the socket's rights): the keeper's roles no
    longer show the case, so the ring's message is not sent; the database read skips it."""
    from casework.models import SiteAnimator
    from notifications import rights

    world = await board_world()
    animator, case = world["animator"], world["case"]
    communicator = await hello(animator)
    database_reads.clear()
    await sync_to_async(SiteAnimator.objects.filter(user=animator).delete)()
    await rights.refresh()
    await asyncio.sleep(1.05)
    await sync_to_async(notify)(
        event_type="escalation_raised", recipients=[animator], message="Plus son site", case=case
    )
    assert await communicator.receive_nothing(timeout=0.5)
    assert len(database_reads) == 1
    await communicator.disconnect()


@run_async
async def test_rights_older_than_a_second_are_not_used(database_reads, monkeypatch):
    """The keeper cannot read (the database is slow or down): after RIGHTS_TTL its rights are not
    used, every ring reads the database, and the notifications still arrive."""
    from notifications import rights

    user = await make_user()
    communicator = await hello(user)

    def unreachable(user_ids):
        raise OSError("database unreachable")

    monkeypatch.setattr(rights, "_read_apart", sync_to_async(unreachable))
    await asyncio.sleep(rights.RIGHTS_TTL + 0.1)
    assert rights.fresh(user.pk) is None
    database_reads.clear()
    await send(user, "par la base")
    assert (await communicator.receive_json_from(timeout=3))["text"] == "par la base"
    assert len(database_reads) == 1
    await communicator.disconnect()


@run_async
async def test_a_stale_ring_reads_the_database(database_reads, monkeypatch):
    """A ring that waited more than RIGHTS_TTL (in Redis, in a queue) is not trusted as it is."""
    from notifications import delivery

    user = await make_user()
    communicator = await hello(user)
    database_reads.clear()
    rings = []
    with monkeypatch.context() as patched:
        patched.setattr(delivery, "_send", lambda group, message, **_: rings.append((group, message)))
        await send(user, "en retard")
    [(group, ring)] = rings
    await get_channel_layer().group_send(group, {**ring, "at": ring["at"] - 5})  # rung 5 s ago
    assert (await communicator.receive_json_from(timeout=3))["text"] == "en retard"
    assert len(database_reads) == 1
    await communicator.disconnect()


def _needs_hints():
    from notifications.layer import RedisChannelLayer

    if not isinstance(get_channel_layer(), RedisChannelLayer):
        pytest.skip("hints go through Redis pub/sub (the in-memory layer has none)")


@run_async
async def test_the_hint_alone_brings_the_notification_and_once_only(monkeypatch):
    """The ring through the layer's queue is lost: its hint (Redis pub/sub) still brings the
    notification; with both, the socket sends it once."""
    _needs_hints()
    user = await make_user()
    communicator = await hello(user)
    layer = get_channel_layer()
    original = layer.group_send

    async def no_queue(group, message):
        if message["type"] != "notify.poke":
            return await original(group, message)
        return None

    monkeypatch.setattr(layer, "group_send", no_queue)
    await send(user, "par l'indice")
    assert (await communicator.receive_json_from(timeout=3))["text"] == "par l'indice"
    monkeypatch.setattr(layer, "group_send", original)
    await send(user, "par les deux")
    assert (await communicator.receive_json_from(timeout=3))["text"] == "par les deux"
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


@run_async
async def test_a_lost_hint_is_made_up_by_the_ring_through_the_queue(monkeypatch):
    _needs_hints()
    from notifications import delivery

    user = await make_user()
    communicator = await hello(user)

    async def lost(layer, user_id, message):
        return None

    monkeypatch.setattr(delivery, "hint", lost)
    await send(user, "sans indice")
    assert (await communicator.receive_json_from(timeout=3))["text"] == "sans indice"
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()
