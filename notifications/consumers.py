"""The notifications WebSocket: authenticated by the session cookie, behind the origin check.

Protocol (JSON):
- client → server: {"type": "hello", "last_id": N} on every (re)connection; the server replays
  every notification after N from the database. {"type": "ping"} → {"type": "pong"} (heartbeat).
- server → client: {"type": "notification", "id", "text", "url", ...}; the client ignores ids it
  already holds. {"type": "revoked"} before closing when the session ends.
  {"type": "board", "site": id, "case": public id}: a case of a pilot site the user animates
  changed; boards re-read what changed from the database (the message carries nothing else).
The channel layer only rings ("notify.poke", "board.changed"): a dropped or discarded ring is caught
up at the next ring or reconnection, because the socket always reads the database after the last id
it sent. Reading "after the last id" loses nothing because notification rows are written only by
the services, inside their transaction, after the audit chain's lock (`audit.chain.write_lock`):
writers are serialised, so ids are committed in increasing order and a lower id can never become
visible after a higher one was read.

Rights are re-read from the database, never trusted from the connection: the user (active, charter)
and their roles at most RIGHTS_TTL seconds old at each ring, so losing access to a case stops its
notifications within a second. The sites whose boards the socket follows are re-read when the
user's animator assignments change ("rights.changed", sent after commit by a signal) and at the
latest every BOARD_RIGHTS_TTL seconds.
"""

import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth import get_user_model

from notifications import selectors
from notifications.delivery import site_group, user_group

CLOSE_UNAUTHORISED = 4401
RIGHTS_TTL = 1.0
BOARD_RIGHTS_TTL = 30.0


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHORISED)
            return
        self.user_id = user.pk
        self.user, self.user_read_at = None, 0.0
        rights = await self._board_rights()
        if rights is None:
            await self.close(code=CLOSE_UNAUTHORISED)
            return
        self.last_id = None  # unknown until the client says hello
        self.group = user_group(user.pk)
        self.site_ids, self.site_ids_read_at = rights, time.monotonic()
        self.joined_site_ids = set()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._join_sites()
        await self.accept()

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        for site_id in getattr(self, "joined_site_ids", ()):
            await self.channel_layer.group_discard(site_group(site_id), self.channel_name)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "hello":
            last_id = content.get("last_id")
            self.last_id = last_id if isinstance(last_id, int) and last_id >= 0 else 0
            await self._push_new()

    async def notify_poke(self, event):
        if self.last_id is not None:
            await self._push_new()

    async def board_changed(self, event):
        if time.monotonic() - self.site_ids_read_at > BOARD_RIGHTS_TTL:
            await self.rights_changed({})
        if event.get("site") in self.site_ids:
            await self.send_json({"type": "board", "site": event["site"], "case": event.get("case")})

    async def rights_changed(self, event):
        rights = await self._board_rights()
        if rights is None:
            await self.session_revoke({})
            return
        self.site_ids, self.site_ids_read_at = rights, time.monotonic()
        await self._join_sites()

    async def session_revoke(self, event):
        await self.send_json({"type": "revoked"})
        await self.close(code=CLOSE_UNAUTHORISED)

    async def _join_sites(self):
        """Follow the boards of the sites the user animates now, and only those: a site taken
        away is left at once (its events would be filtered out anyway, but the socket has no
        business in its group)."""
        for site_id in self.site_ids - self.joined_site_ids:
            await self.channel_layer.group_add(site_group(site_id), self.channel_name)
        for site_id in self.joined_site_ids - self.site_ids:
            await self.channel_layer.group_discard(site_group(site_id), self.channel_name)
        self.joined_site_ids = set(self.site_ids)

    async def _push_new(self):
        allowed, messages, read_up_to = await self._new_messages(self.last_id)
        if not allowed:
            await self.session_revoke({})
            return
        for message in messages:
            await self.send_json(message)
        self.last_id = max(self.last_id, read_up_to)

    def _fresh_user(self):
        """The user row and roles, re-read when older than RIGHTS_TTL; None when no longer allowed."""
        if self.user is None or time.monotonic() - self.user_read_at > RIGHTS_TTL:
            self.user = get_user_model().objects.filter(pk=self.user_id, is_active=True).first()
            self.user_read_at = time.monotonic()
        if self.user is None or not self.user.has_accepted_current_charter:
            return None
        return self.user

    @database_sync_to_async
    def _new_messages(self, last_id: int):
        user = self._fresh_user()
        if user is None:
            return False, [], last_id
        messages, read_up_to = selectors.after(user, last_id)
        return True, messages, read_up_to

    @database_sync_to_async
    def _board_rights(self):
        """The pilot sites the user animates now, or None when the user may not connect any more."""
        from casework.models import SiteAnimator

        self.user = None  # re-read now
        user = self._fresh_user()
        if user is None:
            return None
        return frozenset(SiteAnimator.objects.filter(user_id=user.pk).values_list("site_id", flat=True))
