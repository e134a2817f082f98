"""The notifications WebSocket: authenticated by the session cookie, behind the origin check.

Protocol (JSON):
- client → server: {"type": "hello", "last_id": N} on every (re)connection; the server replays
  every notification after N from the database. {"type": "ping"} → {"type": "pong"} (heartbeat).
- server → client: {"type": "notification", "id", "text", "url", ...}; the client ignores ids it
  already holds. {"type": "revoked"} before closing when the session ends.
  {"type": "board", "site": id, "case": public id}: a case of a pilot site the user animates
  changed; boards re-read what changed from the database (the message carries nothing else).
The channel layer only rings ("notify.poke"): a dropped or discarded ring is caught up at the next
ring or reconnection, because the socket always reads the database after the last id it sent.
"""

import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth import get_user_model

from notifications import selectors
from notifications.delivery import site_group, user_group

CLOSE_UNAUTHORISED = 4401
# Board events are forwarded only for sites the user still animates, re-read at most this often.
BOARD_RIGHTS_TTL = 1.0


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not await self._allowed(user):
            await self.close(code=CLOSE_UNAUTHORISED)
            return
        self.user = user
        self.last_id = None  # unknown until the client says hello
        self.group = user_group(user.pk)
        self.site_ids = await self._animated_sites()
        self.site_ids_checked = time.monotonic()
        self.joined_site_ids = self.site_ids
        await self.channel_layer.group_add(self.group, self.channel_name)
        for site_id in self.joined_site_ids:
            await self.channel_layer.group_add(site_group(site_id), self.channel_name)
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
        if time.monotonic() - self.site_ids_checked > BOARD_RIGHTS_TTL:
            if not await self._allowed(self.user):
                await self.session_revoke({})
                return
            self.site_ids = await self._animated_sites()
            self.site_ids_checked = time.monotonic()
        if event.get("site") in self.site_ids:
            await self.send_json({"type": "board", "site": event["site"], "case": event.get("case")})

    async def session_revoke(self, event):
        await self.send_json({"type": "revoked"})
        await self.close(code=CLOSE_UNAUTHORISED)

    async def _push_new(self):
        if not await self._allowed(self.user):
            await self.session_revoke({})
            return
        for message in await self._missed(self.last_id):
            await self.send_json(message)
            self.last_id = max(self.last_id, message["id"])

    @database_sync_to_async
    def _allowed(self, user) -> bool:
        """Still allowed now: active, and has accepted the current charter (re-read each time)."""
        fresh = (
            get_user_model()
            .objects.filter(pk=user.pk, is_active=True)
            .only("accepted_charter_version")
            .first()
        )
        return fresh is not None and fresh.has_accepted_current_charter

    @database_sync_to_async
    def _animated_sites(self) -> frozenset:
        from casework.models import SiteAnimator

        return frozenset(SiteAnimator.objects.filter(user_id=self.user.pk).values_list("site_id", flat=True))

    @database_sync_to_async
    def _missed(self, last_id: int) -> list[dict]:
        return [selectors.as_message(n) for n in selectors.after(self.user, last_id)]
