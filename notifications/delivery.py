"""Live delivery: after commit, ring the doorbell of each recipient's personal group.

The channel layer delivers at most once and may drop messages: the message carries no content,
only "something new". Each socket then reads the user's rows after the last id it sent, from the
database, which is the source of truth (see consumers.NotificationConsumer)."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    """The personal group of a user; names come from the server only."""
    return f"user.{int(user_id)}"


def _send(group: str, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # the layer (Redis) may be down: the rows stay, sockets catch up later
        logger.warning("notifications: could not reach group %s", group, exc_info=True)


def site_group(site_id: int) -> str:
    """The board group of a pilot site: its animators' sockets listen to it."""
    return f"site.{int(site_id)}"


def ring_after_commit(user_ids) -> None:
    ids = sorted({int(pk) for pk in user_ids})
    if not ids:
        return
    transaction.on_commit(lambda: [_send(user_group(pk), {"type": "notify.poke"}) for pk in ids])


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
