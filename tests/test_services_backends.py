"""The scale-out mode really runs on PostgreSQL and Redis when they are configured.

Locally these checks skip when no service is configured; in CI (`REQUIRE_SERVICES=1`) a missing
service is a failure, never a skip."""

import os
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
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
    assert type(layer).__module__.startswith("channels_redis")

    async def round_trip():
        channel = await layer.new_channel()
        await layer.group_add("probe", channel)
        await layer.group_send("probe", {"type": "probe.message", "value": key})
        message = await layer.receive(channel)
        await layer.group_discard("probe", channel)
        return message

    assert async_to_sync(round_trip)()["value"] == key


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
