"""Live delivery: after commit, ring the doorbell of each recipient's personal group.

The channel layer delivers at most once and may drop messages. A ring carries the new notification
and the id of the recipient's previous one: a socket that sent exactly that previous one, with
rights re-read less than a second ago that show the case, sends it as it is; any other socket reads
the user's rows after the last id it sent from the database, which is the source of truth (see
consumers.NotificationConsumer), and a dropped ring is caught up there.

In the server, a view runs in a worker thread of daphne's event loop: its rings are handed to that
loop and the response does not wait for Redis (measured on a partner's acceptance: 2 ms, and a
Redis that does not answer no longer holds the user's request up to its timeout). Anywhere else
(commands, the timer process, tests) the ring is sent before `_send` returns."""

import asyncio
import contextlib
import logging
import os
import time

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from notifications.layer import RedisChannelLayer, hint

logger = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    """The personal group of a user; names come from the server only."""
    return f"user.{int(user_id)}"


def _server_loop():
    """The event loop that runs this worker thread's view (asgiref records it in the thread), if
    this thread is one."""
    local = SyncToAsync.threadlocal
    loop = getattr(local, "main_event_loop", None)
    if loop is None or getattr(local, "main_event_loop_pid", None) != os.getpid() or not loop.is_running():
        return None
    return loop


async def _deliver(layer, group: str, message: dict, hint_user=None) -> None:
    if hint_user is not None and isinstance(layer, RedisChannelLayer):
        # First the hint (one round trip to the user's sockets, may be lost: notifications.layer),
        # then the ring through the layer's queue, which is kept until a socket reads it.
        with contextlib.suppress(Exception):  # Redis down: group_send below says so
            await hint(layer, hint_user, message)
    try:
        await layer.group_send(group, message)
    except Exception:  # the layer (Redis) may be down: the rows stay, sockets catch up later
        logger.warning("notifications: could not reach group %s", group, exc_info=True)


def _send(group: str, message: dict, hint_user=None) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    loop = _server_loop()
    if loop is not None:
        asyncio.run_coroutine_threadsafe(_deliver(layer, group, message, hint_user), loop)
        return
    try:
        async_to_sync(_deliver)(layer, group, message, hint_user)
    except RuntimeError:  # a thread that runs an event loop of its own: the ring is lost, not the step
        logger.warning("notifications: could not ring group %s from this thread", group, exc_info=True)


def site_group(site_id: int) -> str:
    """The board group of a pilot site: its animators' sockets listen to it."""
    return f"site.{int(site_id)}"


def ring_after_commit(rings) -> None:
    """After commit, ring each recipient's group with what `notifications.services` wrote for them:
    the notification's id, the id of their previous one, the case's facts and the message, with the
    moment of the commit (`at`, seconds since the epoch). A socket sends the message at once only
    when nothing can be missing before it and its rights are fresh; otherwise it reads the
    database, as for a ring without content (consumers.NotificationConsumer.notify_poke)."""
    rings = sorted(rings, key=lambda ring: ring["recipient"])
    if not rings:
        return

    def ring_all():
        at = time.time()
        for ring in rings:
            user_id = ring["recipient"]
            message = {key: value for key, value in ring.items() if key != "recipient"}
            _send(user_group(user_id), {"type": "notify.poke", "at": at, **message}, hint_user=user_id)

    transaction.on_commit(ring_all)


def revoke_after_commit(user_id: int) -> None:
    """Close the user's open sockets (logout, deactivation)."""
    transaction.on_commit(lambda: _send(user_group(user_id), {"type": "session.revoke"}))


def board_ring_after_commit(site_id: int, case_public_id) -> None:
    """Tell the boards of a pilot site that a case changed. The message names the case by its public
    id and nothing else; each board reads what its viewer may see from the database."""
    message = {"type": "board.changed", "site": int(site_id), "case": str(case_public_id)}
    transaction.on_commit(lambda: _send(site_group(site_id), message))


def rights_changed_after_commit(user_id: int) -> None:
    """The user's assignments changed: their open sockets re-read which boards they follow."""
    transaction.on_commit(lambda: _send(user_group(user_id), {"type": "rights.changed"}))
