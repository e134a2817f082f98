"""Notification delivery benchmark (`make bench`): a real daphne process on 127.0.0.1 with the Redis
channel layer (encrypted, as in production) and PostgreSQL, and CLIENTS WebSocket clients.

Measured, from the commit of the business transaction to the receipt by the browser's socket:
- single-recipient notifications (`p50_ms`, `p95_ms`, `p99_ms`), without a case;
- `baseline_p99_ms`: a bare Redis PUBLISH → SUBSCRIBE round trip, one just before each of those
  notifications (the same load, the same moments), and `ratio_p99`, p99 over that baseline's p99;
  `baseline_after_p99_ms`: the same round trip measured on its own after the notifications;
- `case_p50_ms`, `case_p99_ms`: notifications about a case, to animators of its site;
- `fanout100_p99_ms`: a board event of a pilot site watched by 100 animators, the last recipient;
- `delivered_ratio`, `server_rss_mb` (the server's peak resident memory) and `clients`.

The results go to bench/results/latest.json under the key "notify". The bench database (by default
`territoires_bench` on the local PostgreSQL) is emptied first; Redis database 14 is used.

    python -m bench.notify [--clients 1000] [--samples 1000] [--fanout-events 200]
"""

import argparse
import asyncio
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/territoires_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
FANOUT = 100
WARM_UP = 20


def percentile(values, fraction):
    """Nearest-rank percentile of `values` (milliseconds), rounded to 0.1 ms."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return round(ordered[rank], 1)


# Upper limits, but the delivered ratio, which must reach its value. `ratio_p99`: the single
# recipient's p99 over the bare Redis round trip's p99, measured at the same moments (issue 16 §4).
TARGETS = {
    "p99_ms": 100,
    "ratio_p99": 10,
    "fanout100_p99_ms": 250,
    "delivered_ratio": 1.0,
    "server_rss_mb": 300,
}


def service_arguments(parser) -> None:
    """The options of every bench part that choose its services."""
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))


def start_django(args) -> None:
    """Empty the bench's Redis database, point Django at the chosen services, then start it."""
    prepare_environment(args.database_url, args.redis_url)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def prepare_environment(database_url, redis_url):
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CHANNEL_ENCRYPTION_KEYS": os.environ.get("CHANNEL_ENCRYPTION_KEYS", "bench-only-channel-key"),
            "TIMERS_IN_PROCESS": "0",
        }
    )
    os.environ.pop("DJANGO_DEBUG", None)
    # An empty Redis database: groups left by an earlier run would receive the fan-out too.
    import redis

    try:
        redis.Redis.from_url(redis_url).flushdb()
    except redis.ConnectionError as error:
        sys.exit(f"Redis injoignable ({redis_url}) : démarrez-le ou donnez BENCH_REDIS_URL. ({error})")
    if database_url.startswith("postgres"):
        import psycopg

        name = database_url.rsplit("/", 1)[1]
        admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
        try:
            conn = psycopg.connect(admin_url, autocommit=True)
        except psycopg.OperationalError as error:
            sys.exit(
                f"PostgreSQL injoignable ({admin_url}) : démarrez-le ou donnez BENCH_DATABASE_URL. ({error})"
            )
        with conn:
            if not conn.execute("select 1 from pg_database where datname = %s", [name]).fetchone():
                conn.execute(f'create database "{name}"')


def build_world(clients):
    """An empty bench database with `clients` users who accepted the charter, the first FANOUT of
    them animators of one pilot site, a case on that site, and a session for each user."""
    from django.conf import settings
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connection

    from casework.models import PilotSite, SiteAnimator, User
    from tests import live
    from tests.factories import CaseFactory

    name = connection.settings_dict["NAME"]
    if "bench" not in str(name):
        sys.exit(f"Refusing to empty database {name!r}: its name must contain 'bench'.")
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    call_command("seed_region", verbosity=0)
    password = make_password(None)
    users = User.objects.bulk_create(
        User(
            username=f"bench{i}@bench.invalid",
            first_name="Bench",
            last_name=str(i),
            password=password,
            accepted_charter_version=settings.CONFIDENTIALITY_CHARTER_VERSION,
        )
        for i in range(clients)
    )
    site = PilotSite.objects.order_by("pk").first()
    SiteAnimator.objects.bulk_create(
        SiteAnimator(user=user, site=site, role="cdet") for user in users[:FANOUT]
    )
    case = CaseFactory(site=site, active=True)
    cookies = [live.session_for(user) for user in users]
    return users, case, cookies


class Client:
    """One browser: its socket, and when it received each notification id and each board event."""

    def __init__(self, index, cookie):
        self.index, self.cookie = index, cookie
        self.notifications = {}
        self.boards = []
        self.socket = None

    async def open(self, port, last_id):
        from tests import live

        self.socket = await live.ws_connect(port, self.cookie, open_timeout=60, ping_interval=None)
        await self.socket.send(json.dumps({"type": "hello", "last_id": last_id}))
        self.reader = asyncio.create_task(self.read())

    async def read(self):
        async for raw in self.socket:
            now = time.perf_counter()
            message = json.loads(raw)
            if message.get("type") == "notification":
                self.notifications.setdefault(message["id"], now)
            elif message.get("type") == "board":
                self.boards.append(now)


def write_notification(user, case=None):
    """One business transaction notifying one user (about `case`, if given); returns (notification
    id, commit time)."""
    from django.db import transaction

    from notifications.services import notify

    committed = {}
    with transaction.atomic():
        # Registered first, so it runs right after the commit, before the ring.
        transaction.on_commit(lambda: committed.setdefault("at", time.perf_counter()))
        [row] = notify(
            event_type="request_routed", recipients=[user], message="Nouvelle demande (banc)", case=case
        )
    return row.pk, committed["at"]


def record_board_activity(case):
    from django.db import transaction

    from casework.services import record_activity

    committed = {}
    with transaction.atomic():
        transaction.on_commit(lambda: committed.setdefault("at", time.perf_counter()))
        record_activity(case)
    return committed["at"]


class RedisRoundTrip:
    """Bare PUBLISH → SUBSCRIBE round trips on the same Redis, from this same event loop."""

    def __init__(self, redis_url):
        import redis.asyncio as redis

        self.publisher, self.subscriber = redis.from_url(redis_url), redis.from_url(redis_url)
        self.pubsub = self.subscriber.pubsub()
        self.count = 0

    async def open(self):
        await self.pubsub.subscribe("bench.baseline")
        await self.pubsub.get_message(timeout=1)  # subscription confirmation
        return self

    async def once(self) -> float:
        self.count += 1
        sent = time.perf_counter()
        await self.publisher.publish("bench.baseline", str(self.count))
        while await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=5) is None:
            pass
        return (time.perf_counter() - sent) * 1000

    async def close(self):
        await self.pubsub.aclose()
        await self.publisher.aclose()
        await self.subscriber.aclose()


async def redis_baseline(redis_url, samples):
    """`samples` round trips one after the other (2 ms apart)."""
    trip = await RedisRoundTrip(redis_url).open()
    latencies = []
    for _ in range(samples):
        latencies.append(await trip.once())
        await asyncio.sleep(0.002)
    await trip.close()
    return latencies


class PeakMemory:
    """Peak resident memory of a process: the kernel's high-water mark (VmHWM), else sampling."""

    def __init__(self, pid):
        import psutil

        self.process = psutil.Process(pid)
        self.sampled = 0

    def sample(self):
        self.sampled = max(self.sampled, self.process.memory_info().rss)

    def peak_mb(self):
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return round(self.sampled / 2**20, 1)


async def run(args, users, case, cookies, port, server):
    from asgiref.sync import sync_to_async

    from notifications.models import Notification

    memory = PeakMemory(server.pid)
    last_id = await sync_to_async(
        lambda: Notification.objects.order_by("-pk").values_list("pk", flat=True).first()
    )()
    clients = [Client(i, cookie) for i, cookie in enumerate(cookies)]
    gate = asyncio.Semaphore(50)

    async def open_client(client):
        async with gate:
            await client.open(port, last_id or 0)

    started = time.perf_counter()
    await asyncio.gather(*(open_client(client) for client in clients))
    connect_s = time.perf_counter() - started
    await asyncio.sleep(1.0)
    memory.sample()

    # The clients are the measuring instrument: their garbage collector must not pause the readings.
    gc.collect()
    gc.freeze()
    gc.disable()

    # Warm-up, not measured: the first ring opens the database and Redis connections of each side.
    for client in clients[:WARM_UP]:
        await sync_to_async(write_notification)(users[client.index])
        await sync_to_async(record_board_activity)(case)
    await asyncio.sleep(1.0)

    # Single-recipient notifications, one every few milliseconds, spread over all the clients; a
    # bare Redis round trip just before each one: the baseline, under the same load at the same
    # moments.
    trip = await RedisRoundTrip(os.environ["REDIS_URL"]).open()
    sent, interleaved = {}, []
    for i in range(args.samples):
        client = clients[(i * 7919) % len(clients)]  # a prime stride: every client, scattered
        interleaved.append(await trip.once())
        notification_id, committed = await sync_to_async(write_notification)(users[client.index])
        sent[notification_id] = (client, committed)
        await asyncio.sleep(args.pace_ms / 1000)
        if i % 100 == 0:
            memory.sample()
    await asyncio.sleep(2.0)
    single = [
        (client.notifications[nid] - committed) * 1000
        for nid, (client, committed) in sent.items()
        if nid in client.notifications
    ]

    # Notifications about the site's case to its animators (a case they see through their site):
    # the common kind, whose rights include the case's visibility.
    about_case = {}
    for i in range(args.case_samples):
        client = clients[(i * 37) % FANOUT]
        notification_id, committed = await sync_to_async(write_notification)(users[client.index], case)
        about_case[notification_id] = (client, committed)
        await asyncio.sleep(args.pace_ms / 1000)
    await asyncio.sleep(1.0)
    await trip.close()
    on_case = [
        (client.notifications[nid] - committed) * 1000
        for nid, (client, committed) in about_case.items()
        if nid in client.notifications
    ]

    # Board fan-out: one event at a time to the FANOUT animators of the site; the last one counts.
    watchers = clients[:FANOUT]
    fanout, board_expected, board_delivered = [], 0, 0
    for _ in range(args.fanout_events):
        before = [len(w.boards) for w in watchers]
        committed = await sync_to_async(record_board_activity)(case)
        deadline = time.perf_counter() + 5
        while time.perf_counter() < deadline and any(
            len(w.boards) == b for w, b in zip(watchers, before, strict=True)
        ):
            await asyncio.sleep(0.001)
        arrivals = [w.boards[b] for w, b in zip(watchers, before, strict=True) if len(w.boards) > b]
        board_expected += FANOUT
        board_delivered += len(arrivals)
        if len(arrivals) == FANOUT:
            fanout.append((max(arrivals) - committed) * 1000)
        await asyncio.sleep(args.pace_ms / 1000)
    memory.sample()

    baseline = await redis_baseline(os.environ["REDIS_URL"], args.samples)
    for client in clients:
        client.reader.cancel()
        await client.socket.close()

    delivered = len(single) + len(on_case) + board_delivered
    expected = len(sent) + len(about_case) + board_expected
    return {
        "p50_ms": percentile(single, 0.50),
        "p95_ms": percentile(single, 0.95),
        "p99_ms": percentile(single, 0.99),
        "ratio_p99": round(percentile(single, 0.99) / max(percentile(interleaved, 0.99), 0.1), 1),
        "case_p50_ms": percentile(on_case, 0.50) if on_case else None,
        "case_p99_ms": percentile(on_case, 0.99) if on_case else None,
        "case_samples": len(about_case),
        "fanout100_p99_ms": percentile(fanout, 0.99) if fanout else None,
        "baseline_p99_ms": percentile(interleaved, 0.99),
        "baseline_p50_ms": percentile(interleaved, 0.50),
        "baseline_after_p99_ms": percentile(baseline, 0.99),
        "baseline_after_p50_ms": percentile(baseline, 0.50),
        "delivered_ratio": round(delivered / expected, 4),
        "server_rss_mb": memory.peak_mb(),
        "clients": len(clients),
        "samples": len(sent),
        "fanout_events": args.fanout_events,
        "fanout100_p50_ms": percentile(fanout, 0.50) if fanout else None,
        "connect_all_s": round(connect_s, 1),
        "pace_ms": args.pace_ms,
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--fanout-events", type=int, default=200)
    parser.add_argument("--case-samples", type=int, default=200)
    parser.add_argument(
        "--pace-ms", type=float, default=50.0, help="pause between two events (50 ms: about 20 a second)"
    )
    service_arguments(parser)
    args = parser.parse_args()
    if args.clients < FANOUT:
        parser.error(f"--clients must be at least {FANOUT}")

    start_django(args)
    from django.db import connection

    from tests import live

    print(f"notify: preparing {args.clients} users on {connection.vendor} …", flush=True)
    users, case, cookies = build_world(args.clients)
    connection.close()
    port = live.free_port()
    log = Path(tempfile.gettempdir()) / "bench-notify-daphne.log"
    with live.daphne(port, live.server_env(), log) as server:
        print(f"notify: daphne pid {server.pid} on port {port}; {args.clients} sockets …", flush=True)
        figures = asyncio.run(run(args, users, case, cookies, port, server))

    from django.conf import settings

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    figures["context"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip(),
        "database": connection.vendor,
        "channel_layer": f"{settings.CHANNEL_LAYERS['default']['BACKEND']}, encrypted",
        "server": "1 daphne process",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "targets": TARGETS,
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["notify"] = figures
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    targets = figures["context"]["targets"]
    missed = [
        key
        for key, limit in targets.items()
        if figures[key] is None
        or (figures[key] < limit if key == "delivered_ratio" else figures[key] > limit)
    ]
    print("notify: all targets met" if not missed else f"notify: targets missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
