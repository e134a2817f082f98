"""How many notification sockets one user holds open: at most WS_MAX_SOCKETS_PER_USER.

A page opens one socket; a user with twenty tabs open is at the cap. Each open socket holds a
database read at every ring and a place in the server's event loop: without a cap, one account (or
a script with its session cookie) could open thousands.

- With Redis (the channel layer on REDIS_URL: several daphne processes), the sockets of a user are
  counted in Redis, in one sorted set per user (`<prefix>:sockets:<user id>`): each member is a
  socket's channel name, its score the moment its entry expires. Admission is one Lua script —
  drop expired entries, refuse when the user already holds the cap, else add — so the cap holds
  across processes, without a race between two handshakes. Each process renews the entries of its
  open sockets every QUOTA_REFRESH seconds and a socket removes its own when it closes; a process
  stopped normally (SIGTERM: a restart, a deployment) removes those still open as it exits
  (`_release_all_at_exit`). A process that dies without that (kill -9, a crash, a lost machine)
  renews nothing: its sockets stay counted at most QUOTA_TTL seconds, during which the user has
  that many fewer places (a user with more than half the cap of pages open may see some of them
  wait a few minutes before they reconnect). Redis restarted empty forgets every count: sockets
  opened then are counted from zero (the open ones are closed by the Redis watch and reconnect,
  counted again).
- Without Redis (the embedded mode: one process, the in-memory layer), a dictionary of the process
  counts them, exactly.

Redis unreachable at admission: the error reaches the consumer, which closes with 4503 as for any
layer error (the socket could not join its groups anyway).
"""

import asyncio
import atexit
import contextlib
import time
import weakref

from django.conf import settings

QUOTA_TTL = 60.0
QUOTA_REFRESH = 15.0  # a quarter of the TTL: a renewal lost to a Redis hiccup is caught up

# KEYS[1] the user's set; ARGV: channel name, now, expiry, cap, key TTL (s). 1: admitted, 0: refused.
ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def cap() -> int:
    return settings.WS_MAX_SOCKETS_PER_USER


def _uses_redis(layer) -> bool:
    return hasattr(layer, "connection") and hasattr(layer, "consistent_hash")


# --- In one process ------------------------------------------------------------------------------

_local: dict[int, set[str]] = {}


def _local_admit(user_id: int, channel: str) -> bool:
    held = _local.setdefault(user_id, set())
    if channel not in held and len(held) >= cap():
        return False
    held.add(channel)
    return True


def _local_release(user_id: int, channel: str) -> None:
    held = _local.get(user_id)
    if held is not None:
        held.discard(channel)
        if not held:
            del _local[user_id]


# --- In Redis ------------------------------------------------------------------------------------


def _key(layer, user_id: int) -> str:
    return f"{layer.prefix}:sockets:{user_id}"


def _server(layer, key: str):
    return layer.connection(layer.consistent_hash(key))


_counted = weakref.WeakSet()  # consumers of this process whose entry is in Redis
_refresh_task = None


async def _refresh(layer) -> None:
    """While this process has counted sockets: renew their entries (never let a live one expire)."""
    while _counted:
        await asyncio.sleep(QUOTA_REFRESH)
        expires = time.time() + QUOTA_TTL
        pipelines = {}
        for consumer in list(_counted):
            key = _key(layer, consumer.user_id)
            index = layer.consistent_hash(key)
            if index not in pipelines:
                pipelines[index] = layer.connection(index).pipeline(transaction=False)
            pipelines[index].zadd(key, {consumer.channel_name: expires})
            pipelines[index].expire(key, int(QUOTA_TTL) + 1)
        for pipeline in pipelines.values():
            with contextlib.suppress(Exception):  # Redis down: renewed at the next pass, or expired
                await pipeline.execute()


def _start_refresh(consumer) -> None:
    global _refresh_task
    _counted.add(consumer)
    loop = asyncio.get_running_loop()
    if _refresh_task is None or _refresh_task.done() or _refresh_task.get_loop() is not loop:
        _refresh_task = loop.create_task(_refresh(consumer.channel_layer))


# --- The consumer's side ---------------------------------------------------------------------------


async def admit(consumer) -> bool:
    """Count the consumer's socket for its user; False when the user already holds the cap."""
    layer, user_id, channel = consumer.channel_layer, consumer.user_id, consumer.channel_name
    if not _uses_redis(layer):
        return _local_admit(user_id, channel)
    key = _key(layer, user_id)
    now = time.time()
    admitted = await _server(layer, key).eval(
        ADMIT, 1, key, channel, now, now + QUOTA_TTL, cap(), int(QUOTA_TTL) + 1
    )
    if admitted:
        _start_refresh(consumer)
    return bool(admitted)


async def release(consumer) -> None:
    """The socket closed: it no longer counts (idempotent; Redis down: the entry expires)."""
    user_id = getattr(consumer, "user_id", None)
    if user_id is None:
        return
    layer, channel = consumer.channel_layer, consumer.channel_name
    if not _uses_redis(layer):
        _local_release(user_id, channel)
        return
    if consumer not in _counted:
        return
    key = _key(layer, user_id)
    try:
        await _server(layer, key).zrem(key, channel)
    finally:  # removed, or failed (it expires): no longer renewed; cancelled: left for the exit
        _counted.discard(consumer)


@atexit.register
def _release_all_at_exit() -> None:
    """The process stops (daphne on SIGTERM returns, then the interpreter exits): the sockets still
    open here are removed from their users' counts, with a plain client, the event loop being gone."""
    consumers = list(_counted)
    if not consumers:
        return
    import redis

    clients = {}
    for consumer in consumers:
        layer = consumer.channel_layer
        key = _key(layer, consumer.user_id)
        index = layer.consistent_hash(key)
        if index not in clients:
            address = layer.hosts[index]["address"]
            client = redis.Redis.from_url(address, socket_timeout=2, socket_connect_timeout=2)
            clients[index] = client.pipeline()
        clients[index].zrem(key, consumer.channel_name)
    for pipeline in clients.values():
        with contextlib.suppress(Exception):
            pipeline.execute()
