"""The Redis channel layer of the notification sockets: channels_redis's, with a shorter group send.

`channels_redis.core.RedisChannelLayer.group_send` makes four Redis round trips one after the other:
drop the group's expired members, read the members, drop each member channel's expired messages (a
pipeline), then the Lua script that queues the message on each channel. Every ring of a socket and
every board event waits for the four. Here the same commands are sent in two round trips: the
group's cleanup and the read of its members in one pipeline, then one Lua script that drops each
channel's expired messages before it checks the channel's capacity and queues the message — the
same commands in the same order per channel, and the same messages (built by channels_redis's own
`_map_channel_keys_to_connection`), so receivers in processes running channels_redis's class read
them alike. Measured in `make bench` (docs/performance.md).

Everything else is channels_redis's: sending to one channel, receiving, groups, expiry, capacity,
encryption (`symmetric_encryption_keys`)."""

import asyncio
import contextlib
import logging
import time

from channels_redis.core import RedisChannelLayer as _RedisChannelLayer

logger = logging.getLogger(__name__)

# KEYS: the channels' keys. ARGV: one message per key, then one capacity per key, then the moment
# (seconds), the messages' expiry (seconds) and the oldest score kept (now - expiry, whole seconds).
GROUP_SEND = """
local count = #KEYS
local now = ARGV[2 * count + 1]
local expiry = ARGV[2 * count + 2]
local oldest = ARGV[2 * count + 3]
local over_capacity = 0
for i = 1, count do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, oldest)
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + count]) then
        redis.call('ZADD', KEYS[i], now, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""


class RedisChannelLayer(_RedisChannelLayer):
    async def group_send(self, group, message):
        """Send `message` to every channel of `group`: two Redis round trips instead of four."""
        assert self.require_valid_group_name(group), "Group name not valid"
        key = self._group_key(group)
        connection = self.connection(self.consistent_hash(group))
        pipe = connection.pipeline(transaction=False)
        pipe.zremrangebyscore(key, min=0, max=int(time.time()) - self.group_expiry)
        pipe.zrange(key, 0, -1)
        _, members = await pipe.execute()
        channel_names = [member.decode("utf8") for member in members]
        by_connection, messages, capacities = self._map_channel_keys_to_connection(channel_names, message)
        for index, channel_keys in by_connection.items():
            now = time.time()
            args = [messages[key] for key in channel_keys]
            args += [capacities[key] for key in channel_keys]
            args += [now, self.expiry, int(now) - int(self.expiry)]
            over = await self.connection(index).eval(GROUP_SEND, len(channel_keys), *channel_keys, *args)
            if over > 0:
                logger.info("%s of %s channels over capacity in group %s", over, len(channel_names), group)


# --- Hints: the notification's ring, ahead of the doorbell --------------------------------------
#
# A ring through the layer's queue (group_send, then the receiving process's BZPOPMIN and its backup
# write) makes five Redis round trips one after the other before the socket wakes. The same ring is
# first published on Redis pub/sub (`hint`), one round trip to the processes that hold the user's
# sockets, which put it in the socket's own receive buffer: the socket handles it as any message,
# in order with the others. Pub/sub keeps nothing: a hint published while a process is
# disconnected, or to a socket busy at that moment, is lost — the ring through the queue follows
# anyway and is then the one handled (a socket ignores a ring whose id it already read or sent).
# So hints change how soon, never what: what a socket sends is decided by its last id, its rights
# and the database, as for any ring (notifications.consumers).


def _hint_channel(layer, user_id: int) -> str:
    return f"{layer.prefix}hint.user.{int(user_id)}"


class RingHints:
    """The hints of this process: the queues of the sockets listening to each user's hints, and the
    one pub/sub connection (and reading task) that receives them. One per layer and event loop."""

    def __init__(self, layer):
        self.layer = layer
        self.sockets: dict[int, list[asyncio.Queue]] = {}  # user id -> the hint queues of their sockets
        self.pubsub = None
        self.reader = None
        self.failing = False

    async def listen(self, user_id: int, queue: asyncio.Queue) -> None:
        queues = self.sockets.setdefault(user_id, [])
        queues.append(queue)
        if len(queues) == 1:
            if self.pubsub is None:
                self.pubsub = self.layer.connection(0).pubsub()
            await self.pubsub.subscribe(_hint_channel(self.layer, user_id))
        if self.reader is None or self.reader.done():
            self.reader = asyncio.get_running_loop().create_task(self._read())

    async def forget(self, user_id: int, queue: asyncio.Queue) -> None:
        queues = self.sockets.get(user_id)
        if not queues or queue not in queues:
            return
        queues.remove(queue)
        if not queues:
            del self.sockets[user_id]
            if self.pubsub is not None:
                await self.pubsub.unsubscribe(_hint_channel(self.layer, user_id))

    def _deliver(self, user_id: int, data: bytes) -> None:
        queues = self.sockets.get(user_id)
        if not queues:
            return
        message = self.layer.deserialize(data)
        for queue in queues:
            with contextlib.suppress(asyncio.QueueFull):  # a socket far behind: the ring follows
                queue.put_nowait(dict(message))

    async def _read(self) -> None:
        prefix = _hint_channel(self.layer, 0)[:-1]
        while self.sockets:
            try:
                message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis unreachable: the rings through the queue still come
                if not self.failing:
                    logger.warning("notifications: ring hints interrupted (%s)", error)
                self.failing = True
                await asyncio.sleep(1.0)
                continue
            self.failing = False
            if message is None or message.get("type") != "message":
                continue
            name = message["channel"]
            name = name.decode() if isinstance(name, bytes) else name
            if name.startswith(prefix):
                with contextlib.suppress(Exception):  # a hint that cannot be read is only a hint
                    self._deliver(int(name[len(prefix) :]), message["data"])


_hints: dict = {}


def hints_of(layer) -> RingHints | None:
    """This process's hints for `layer` on the running loop; None for a layer without them (the
    in-memory layer of the embedded mode)."""
    if not isinstance(layer, RedisChannelLayer):
        return None
    loop = asyncio.get_running_loop()
    key = (id(layer), loop)
    if key not in _hints:
        if len(_hints) > 16:  # loops of finished tests
            _hints.clear()
        _hints[key] = RingHints(layer)
    return _hints[key]


async def hint(layer, user_id: int, message: dict) -> None:
    """Publish `message` (a notification's ring) to the processes holding `user_id`'s sockets."""
    await layer.connection(0).publish(_hint_channel(layer, user_id), layer.serialize(message))
