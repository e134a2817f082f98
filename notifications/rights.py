"""The rights of the users with an open notification socket in this process, kept fresh together.

A ring carries its notification (notifications.delivery); a socket may send it without reading the
database only with rights re-read less than RIGHTS_TTL ago (consumers.NotificationConsumer). A user
is rung rarely (minutes apart), so rights read at the user's previous ring are always too old. One
task per process re-reads instead, every KEEP_INTERVAL, the rights of every user who has a socket
open here — the user row (active, platform administrator, charter version) and their roles
(casework.rules.roles_of_users) — in four queries whatever their number, in a thread of its own
(never the socket's database thread, where the rings that read the database wait).

`fresh(user_id)` gives the user's rights if they were read less than RIGHTS_TTL ago, else None (the
socket then reads the database, as without this module). If the database is slow or unreachable
the rights age and every ring goes through the database read: they are never used older than
RIGHTS_TTL."""

import asyncio
import logging
import time
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings

from casework.rules import Roles

logger = logging.getLogger(__name__)

RIGHTS_TTL = 1.0
KEEP_INTERVAL = 0.4  # rights are then at most about half a second old when the keeper keeps up


@dataclass(frozen=True)
class Rights:
    allowed: bool  # active and under the current charter: may receive notifications at all
    is_platform_admin: bool
    roles: Roles


_followed: dict[int, int] = {}  # user id -> open sockets of this process
_rights: dict[int, Rights] = {}  # of the followed users, all read together
_read_at = float("-inf")  # time.monotonic() when that read began
_task = None


def follow(user_id: int) -> None:
    """A socket of `user_id` opened: keep the user's rights fresh while one is open."""
    global _task
    _followed[user_id] = _followed.get(user_id, 0) + 1
    loop = asyncio.get_running_loop()
    if _task is None or _task.done() or _task.get_loop() is not loop:
        _task = loop.create_task(_keep())


def unfollow(user_id: int) -> None:
    left = _followed.get(user_id, 0) - 1
    if left > 0:
        _followed[user_id] = left
    else:
        _followed.pop(user_id, None)


def fresh(user_id: int) -> Rights | None:
    """The user's rights if read less than RIGHTS_TTL ago, else None."""
    if time.monotonic() - _read_at > RIGHTS_TTL:
        return None
    return _rights.get(user_id)


def read(user_ids) -> dict[int, Rights]:
    """The rights of `user_ids` now (a user who is not active comes back not allowed)."""
    from casework.models import User
    from casework.rules import NO_ROLES, ids_among, roles_of_users

    ids = list(user_ids)
    users = {
        pk: (superuser, charter)
        for pk, superuser, charter in User.objects.filter(pk__in=ids_among(ids), is_active=True).values_list(
            "pk", "is_superuser", "accepted_charter_version"
        )
    }
    roles = roles_of_users(users)
    current = settings.CONFIDENTIALITY_CHARTER_VERSION
    refused = Rights(False, False, NO_ROLES)
    rights = dict.fromkeys(ids, refused)
    for pk, (superuser, charter) in users.items():
        if charter == current:
            rights[pk] = Rights(True, superuser, roles[pk])
    return rights


# A thread of its own (thread_sensitive=False): not the one where the sockets' reads wait.
_read_apart = database_sync_to_async(read, thread_sensitive=False)


async def refresh() -> None:
    """Re-read the rights of every user followed now (also what tests call to skip the wait)."""
    global _rights, _read_at
    ids = list(_followed)
    if not ids:
        return
    read_at = time.monotonic()
    rights = await _read_apart(ids)
    if read_at >= _read_at:  # not overtaken by a later read
        _rights, _read_at = rights, read_at


async def _keep() -> None:
    while _followed:
        started = time.monotonic()
        try:
            await refresh()
        except Exception:  # the database may be down: the rights age, the sockets read the database
            logger.warning("notifications: could not re-read the sockets' rights", exc_info=True)
        await asyncio.sleep(max(0.0, KEEP_INTERVAL - (time.monotonic() - started)))
