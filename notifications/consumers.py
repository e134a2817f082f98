"""The notifications WebSocket: authenticated by the session cookie, behind the origin check.

Protocol (JSON):
- client → server: {"type": "hello", "last_id": N} on every (re)connection; the server replays
  every notification after N from the database. {"type": "ping"} → {"type": "pong"} (heartbeat).
- server → client: {"type": "notification", "id", "text", "url", ...}; the client ignores ids it
  already holds. {"type": "revoked"} before closing when the session ends.
  {"type": "board", "site": id, "case": public id}: a case of a pilot site the user animates
  changed; boards re-read what changed from the database (the message carries nothing else).
The channel layer rings ("notify.poke", "board.changed"); the database is the source of truth. A
"notify.poke" carries its notification (notifications.delivery): its id, the id of the user's
previous notification (returned by the INSERT that wrote it), the moment of the commit, the case's
site, referent and referent organisation as the writing transaction saw them, and the message. The
socket sends that message as it came only when all of these hold (`_can_send_as_rung`):
- nothing of the user can be missing before it: the previous id is at most the last id the socket
  read or sent (so a dropped ring is never skipped over);
- the ring is less than RIGHTS_TTL old;
- rights re-read less than RIGHTS_TTL ago (notifications.rights, one keeper per process for every
  open socket) say the user is active under the current charter and, for a notification about a
  case, show the case through its referent, its site's animators or a platform administrator
  (casework.rules.sees_case_by_roles; the other ways of seeing a case are the database's to say).
Any other ring — a gap, stale rights, a case the roles do not show, a ring without content —
reads the database after the last id, as a hello does: a dropped or discarded ring is caught up at
the next ring or reconnection. Reading "after the last id" loses nothing because notification rows
are written only by the services, inside their transaction, after the audit chain's lock
(`audit.chain.write_lock`): writers are serialised, so ids are committed in increasing order and a
lower id can never become visible after a higher one was read; the same order makes the INSERT's
previous id final. Each message is sent once: an id at or below the last one is never sent again.

Frames are parsed strictly (`receive`): a binary frame, a text frame longer than MAX_FRAME
characters, text that is not JSON, JSON nested deeper than MAX_DEPTH, anything but an object with a
string "type", or a hello whose last_id is not a whole number from 0 to MAX_ID (or null) closes the
socket with CLOSE_BAD_FRAME (4400), logged in one line, no traceback. An object of an unknown type is ignored
(a newer page talking to an older server during a deployment).

Rights are re-read from the database, never trusted from the connection: the user (active, charter)
and their roles at most RIGHTS_TTL seconds old at each ring — by the keeper for a ring sent as it
came, by the socket's own read otherwise —, so losing access to a case stops its notifications
within a second. The sites whose boards the socket follows are re-read when the
user's animator assignments change ("rights.changed", sent after commit by a signal) and at the
latest every BOARD_RIGHTS_TTL seconds.

Redis may stop, or restart: without persistence it comes back empty, every group membership
forgotten, and the sockets that did not notice (the layer's client retries quietly) would never hear
a ring again. So a socket notes which Redis it joined its groups on (`layer_identity`: the servers'
run ids) and, once per server process, `_watch_layer` reads them again every WATCH_INTERVAL seconds
and closes with CLOSE_TRY_AGAIN the sockets that joined an earlier one. A layer error inside a socket
closes it the same way instead of crashing it. Either way the browser reconnects with back-off, joins
the groups again, replays from the database what it missed and re-reads the live parts of its page.
"""

import asyncio
import contextlib
import functools
import json
import logging
import time
import weakref

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.contrib.auth import get_user_model

from casework.rules import sees_case_by_roles
from notifications import quota, selectors
from notifications import rights as keeper
from notifications.delivery import site_group, user_group
from notifications.layer import hints_of
from workflows.compiled import CompiledRead

try:
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - redis comes with channels_redis
    RedisError = OSError

# What a channel layer raises when its backend is unreachable (OSError covers timeouts).
LAYER_ERRORS = (RedisError, OSError)

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORISED = 4401
# The user already holds WS_MAX_SOCKETS_PER_USER open sockets (notifications.quota).
CLOSE_TOO_MANY = 4429
# A frame outside the protocol (not a JSON object, too long, too deep, a binary frame).
CLOSE_BAD_FRAME = 4400
# The protocol's messages are a few dozen characters of flat JSON.
MAX_FRAME = 4096
MAX_DEPTH = 2
MAX_ID = 2**63 - 1  # the largest id of the database (bigint): beyond it a query would fail
# The channel layer failed or restarted: try again later (RFC 6455's 1013 is not open to
# applications: daphne's autobahn accepts 1000 and 3000-4999 only).
CLOSE_TRY_AGAIN = 4503
WATCH_INTERVAL = 2.0
RIGHTS_TTL = keeper.RIGHTS_TTL
BOARD_RIGHTS_TTL = 30.0
HINTS_QUEUED = 100  # hints waiting for a busy socket; beyond, they are dropped (the rings follow)


async def layer_identity(layer):
    """Which Redis servers the layer talks to now (their run ids, new at each restart); None for a
    layer without Redis (the in-memory layer of the embedded mode: one process, nothing to lose)."""
    if not hasattr(layer, "ring_size") or not hasattr(layer, "connection"):
        return None
    servers = [layer.connection(index) for index in range(layer.ring_size)]
    return tuple([(await server.info("server"))["run_id"] for server in servers])


_sockets = weakref.WeakSet()  # the open sockets of this process that joined their groups
_watch_task = None


def _watch(consumer) -> None:
    global _watch_task
    _sockets.add(consumer)
    loop = asyncio.get_running_loop()
    if _watch_task is None or _watch_task.done() or _watch_task.get_loop() is not loop:
        _watch_task = loop.create_task(_watch_layer(consumer.channel_layer))


async def _watch_layer(layer) -> None:
    """While this process has sockets: close those whose groups were joined on another Redis."""
    while _sockets:
        await asyncio.sleep(WATCH_INTERVAL)
        try:
            now = await layer_identity(layer)
        except LAYER_ERRORS:
            continue  # unreachable: the sockets wait (or fail and close); read again later
        stale = [consumer for consumer in _sockets if consumer.layer_identity != now]
        if stale:
            logger.warning("notifications: Redis restarted, %d socket(s) closed to join again", len(stale))
        for consumer in stale:
            _sockets.discard(consumer)
            with contextlib.suppress(Exception):
                await consumer.close(code=CLOSE_TRY_AGAIN)


# The user row, if still active: compiled once per database (workflows.compiled), read at each ring.
_ACTIVE_USER = CompiledRead(lambda user: get_user_model().objects.filter(pk=user, is_active=True), "user")


class BadFrame(ValueError):
    pass


def _nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in `text`, counted outside strings, in one pass: the
    depth is known before json.loads recurses into it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _reject_constant(name):
    raise BadFrame(f"non-standard constant {name}")


def parse_frame(text_data, bytes_data) -> dict:
    """One client frame as the protocol's object, or BadFrame. Bounded: at most MAX_FRAME
    characters, nested at most MAX_DEPTH deep, checked before parsing."""
    if text_data is None or bytes_data is not None:
        raise BadFrame("binary frame")
    if len(text_data) > MAX_FRAME:
        raise BadFrame(f"frame of {len(text_data)} characters")
    if _nesting_depth(text_data) > MAX_DEPTH:
        raise BadFrame("frame nested too deep")
    try:
        content = json.loads(text_data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
        raise BadFrame(f"not JSON ({type(error).__name__})") from None
    if not isinstance(content, dict) or not isinstance(content.get("type"), str):
        raise BadFrame("not an object with a type")
    return content


def last_id_of(content: dict) -> int:
    """The hello's last id: a whole number from 0 to MAX_ID, or null for « nothing yet » (0)."""
    last_id = content.get("last_id")
    if last_id is None:
        return 0
    if isinstance(last_id, bool) or not isinstance(last_id, int) or not 0 <= last_id <= MAX_ID:
        raise BadFrame("last_id is not a whole number >= 0")
    return last_id


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    async def __call__(self, scope, receive, send):
        try:
            await self._consume(scope, receive, send)
        except LAYER_ERRORS as error:
            # Refused before the handshake, closed after it: either way the browser tries again later.
            logger.warning("notifications: channel layer unreachable, socket closed (%s)", error)
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN})
        finally:
            _sockets.discard(self)
            self._unfollow()
            with contextlib.suppress(Exception):
                await self._forget_hints()
            with contextlib.suppress(Exception):
                await quota.release(self)  # also when the socket ended on an error

    async def _consume(self, scope, receive, send):
        """channels' `AsyncConsumer.__call__`, with a third source of messages beside the client's
        frames and the layer's channel: the hints of the user's rings (notifications.layer), put in
        `self.hints` by this process's pub/sub reader. channels' loop (`await_many_dispatch`) keeps
        one pending read per source and dispatches their messages one at a time, in arrival order."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self.base_send = send
        self.hints = asyncio.Queue(maxsize=HINTS_QUEUED)
        try:
            await await_many_dispatch([receive, self.channel_receive, self.hints.get], self.dispatch)
        except StopConsumer:
            pass

    async def dispatch(self, message):
        """channels' dispatch without its `aclose_old_connections()` before every handler: that is a
        hop to the database thread and back for each ring, board event and client frame (measured
        0.3 to 0.8 ms of a ring, and the 100 sockets of a board fan-out queued in that one thread).
        It closes the database connections of that thread, which this consumer only uses through
        `database_sync_to_async`, itself closing them before and after each call."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

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
        if not await quota.admit(self):
            # Accepted, then closed: a refused handshake reaches the page as 1006, with no reason;
            # 4429 tells it to wait minutes before trying again (static/js/notifications.js).
            logger.info("notifications: user %s holds %d sockets, one more refused", user.pk, quota.cap())
            self.closing = True
            await self.accept()
            await self.close(code=CLOSE_TOO_MANY)
            return
        self.last_id = None  # unknown until the client says hello
        self.group = user_group(user.pk)
        self.site_ids, self.site_ids_read_at = rights, time.monotonic()
        self.joined_site_ids = set()
        self.layer_identity = await layer_identity(self.channel_layer)  # before joining: never newer
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._join_sites()
        await self.accept()
        keeper.follow(self.user_id)
        self.followed = True
        self.ring_hints = hints_of(self.channel_layer)
        if self.ring_hints is not None:
            with contextlib.suppress(*LAYER_ERRORS):  # only hints: the rings through the queue come anyway
                await self.ring_hints.listen(self.user_id, self.hints)
        if self.layer_identity is not None:
            _watch(self)

    async def disconnect(self, code):
        self._unfollow()
        await self._forget_hints()
        await quota.release(self)
        groups = [self.group] if getattr(self, "group", None) else []
        groups += [site_group(site_id) for site_id in getattr(self, "joined_site_ids", ())]
        for group in groups:
            # The layer may be down: the membership then dies with it, or expires (group_expiry).
            with contextlib.suppress(*LAYER_ERRORS):
                await self.channel_layer.group_discard(group, self.channel_name)

    async def _forget_hints(self):
        ring_hints, self.ring_hints = getattr(self, "ring_hints", None), None
        if ring_hints is not None:
            with contextlib.suppress(*LAYER_ERRORS):
                await ring_hints.forget(self.user_id, self.hints)

    def _unfollow(self):
        if getattr(self, "followed", False):
            self.followed = False
            keeper.unfollow(self.user_id)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Every client frame, parsed strictly (see the module's docstring): a bad one closes the
        socket with CLOSE_BAD_FRAME instead of raising into daphne (a traceback and 1011)."""
        if getattr(self, "closing", False):
            return  # closed by the server (a bad frame, too many sockets): nothing more is read
        try:
            content = parse_frame(text_data, bytes_data)
            if content["type"] == "hello":
                self.last_id = last_id_of(content)
                await self._push_new()
            elif content["type"] == "ping":
                await self.send_json({"type": "pong"})
        except BadFrame as error:
            logger.info("notifications: bad frame from user %s, socket closed (%s)", self.user_id, error)
            self.closing = True
            await self.close(code=CLOSE_BAD_FRAME)

    async def notify_poke(self, event):
        if self.last_id is None:
            return  # no hello yet: the hello reads the database
        if isinstance(event.get("id"), int) and event["id"] <= self.last_id:
            return  # already read or sent (its hint came first, or the database read had it)
        if self._can_send_as_rung(event):
            await self.send_json(event["message"])
            self.last_id = event["id"]
            return
        await self._push_new()

    def _can_send_as_rung(self, event) -> bool:
        """The ring's message may be sent without reading the database: nothing of the user can be
        missing between the last id sent and this one (the ring names the previous notification of
        the user, and this socket read or sent it), the ring is younger than RIGHTS_TTL, and rights
        re-read less than RIGHTS_TTL ago (notifications.rights) let the user receive it and, for a
        notification about a case, show the case (casework.rules.sees_case_by_roles). Otherwise the
        database decides (`_push_new`)."""
        message, notification_id = event.get("message"), event.get("id")
        if not isinstance(message, dict) or not isinstance(notification_id, int):
            return False  # a ring without content (another version of the server)
        if (event.get("previous") or 0) > self.last_id:
            return False  # a notification in between whose ring this socket did not get
        at = event.get("at")
        if not isinstance(at, int | float) or abs(time.time() - at) > RIGHTS_TTL:
            return False
        held = keeper.fresh(self.user_id)
        if held is None or not held.allowed:
            return False
        case = event.get("case")
        if case is None:
            return True
        return sees_case_by_roles(
            self.user_id,
            is_platform_admin=held.is_platform_admin,
            roles=held.roles,
            site_id=case.get("site"),
            referent_id=case.get("referent"),
            referent_organisation_id=case.get("organisation"),
        )

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
            read_at = time.monotonic()
            self.user = next(iter(_ACTIVE_USER(user=self.user_id)), None)
            self.user_read_at = read_at
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
