"""The scale-out mode really runs on PostgreSQL and Redis when they are configured.

Locally these checks skip when no service is configured; in CI (`REQUIRE_SERVICES=1`) a missing
service is a failure, never a skip."""

import os
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.core.cache import cache
from django.db import connection

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _require(configured: bool, what: str):
    if configured:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {what} is not configured")
    pytest.skip(f"{what} not configured (set it, or REQUIRE_SERVICES=1 to make this a failure)")


@pytest.mark.django_db
def test_database_is_postgresql_when_configured():
    _require(bool(settings.DATABASE_URL), "DATABASE_URL")
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("select version()")
        assert "PostgreSQL" in cursor.fetchone()[0]


@pytest.mark.django_db
def test_embedded_sqlite_uses_wal_and_immediate_transactions():
    if connection.vendor != "sqlite":
        pytest.skip("embedded mode only")
    assert settings.DATABASES["default"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in settings.DATABASES["default"]["OPTIONS"]["init_command"]


def test_cache_and_channel_layer_use_redis_when_configured():
    _require(bool(settings.REDIS_URL), "REDIS_URL")
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    key = f"probe-{uuid.uuid4()}"
    cache.set(key, "ok", 10)
    assert cache.get(key) == "ok"

    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)  # channels_redis's, with a shorter group send

    async def round_trip():
        channel = await layer.new_channel()
        await layer.group_add("probe", channel)
        await layer.group_send("probe", {"type": "probe.message", "value": key})
        message = await layer.receive(channel)
        await layer.group_discard("probe", channel)
        return message

    assert async_to_sync(round_trip)()["value"] == key


def test_the_shorter_group_send_reaches_every_channel_and_channels_redis_reads_it():
    """notifications.layer sends a group's messages in two Redis round trips instead of four; the
    processes running channels_redis's own class read them alike: one channel in one process, two in
    another (one message for both, naming them); a channel at its capacity is skipped."""
    _require(bool(settings.REDIS_URL), "REDIS_URL")
    from notifications.layer import RedisChannelLayer as OurLayer

    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    group = f"probe-{uuid.uuid4().hex}"

    async def scenario():
        ours = OurLayer(**{**config, "capacity": 1})
        one, two, three = (RedisChannelLayer(**config) for _ in range(3))
        alone, first, second = await one.new_channel(), await two.new_channel(), await two.new_channel()
        full = await three.new_channel()
        for channel in (alone, first, second, full):
            await ours.group_add(group, channel)
        await three.send(full, {"type": "filler"})  # at the capacity of 1
        trips = []  # Redis round trips of the group send: single commands, pipelines
        connection = ours.connection(0)
        command, pipeline = connection.execute_command, connection.pipeline

        async def counted_command(*args, **kwargs):
            trips.append(args[0])
            return await command(*args, **kwargs)

        def counted_pipeline(*args, **kwargs):
            pipe = pipeline(*args, **kwargs)
            execute = pipe.execute

            async def counted_execute(*a, **k):
                trips.append("pipeline")
                return await execute(*a, **k)

            pipe.execute = counted_execute
            return pipe

        connection.execute_command, connection.pipeline = counted_command, counted_pipeline
        await ours.group_send(group, {"type": "probe.message", "value": "ring"})
        del connection.execute_command, connection.pipeline
        received = [await one.receive(alone), await two.receive(first), await two.receive(second)]
        filler = await three.receive(full)
        for channel in (alone, first, second, full):
            await ours.group_discard(group, channel)
        queued = await connection.zcard(three.prefix + full.split("!")[0] + "!")
        for layer in (ours, one, two, three):
            await layer.close_pools()
        return trips, received, filler, queued

    trips, received, filler, queued = async_to_sync(scenario)()
    assert trips == ["pipeline", "EVALSHA"] or trips == ["pipeline", "EVAL"]  # channels_redis: four
    assert [message["value"] for message in received] == ["ring"] * 3
    assert filler["type"] == "filler"
    assert queued == 0  # the full channel got no ring


def test_embedded_channel_layer_is_in_memory():
    if settings.REDIS_URL:
        pytest.skip("embedded mode only")
    assert type(get_channel_layer()).__name__ == "InMemoryChannelLayer"


def test_redis_reads_outlast_the_layers_blocking_receive():
    """The layer's receive blocks 5 s in BZPOPMIN; a socket read timeout as short (redis-py's default)
    kills idle consumers under load. The configured timeout must be longer."""
    _require(bool(settings.REDIS_URL), "REDIS_URL")
    layer = get_channel_layer()

    async def pool_settings():
        return layer.connection(0).connection_pool.connection_kwargs

    assert async_to_sync(pool_settings)()["socket_timeout"] > layer.brpop_timeout
