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
