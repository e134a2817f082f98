"""Real servers for tests and benchmarks: daphne processes on free local ports, sessions made for
users, and WebSocket clients that present them (the `websockets` library, as a browser would)."""

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    """The URL of the database this process uses now (the test database under pytest)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


def admin_url() -> str:
    """This process's PostgreSQL database, as its own (administrative) user, for psycopg directly."""
    return database_url().replace("postgres://", "postgresql://", 1)


@contextlib.contextmanager
def limited_role(limit: int):
    """A login role that PostgreSQL allows `limit` connections, with the application's rights on
    the tables of this process's database (PostgreSQL); dropped at the end. Yields (name, URL)."""
    db = connection.settings_dict
    name = f"{db['NAME']}_limited"[:63]
    quoted = connection.ops.quote_name(name)
    password = secrets.token_hex(16)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {quoted}")
        cursor.execute(f"CREATE ROLE {quoted} LOGIN PASSWORD '{password}' CONNECTION LIMIT {int(limit)}")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}")
        cursor.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    try:
        yield name, f"postgres://{name}:{password}@{host}:{port}/{db['NAME']}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name]
            )
            cursor.execute(f"DROP OWNED BY {quoted}")
            cursor.execute(f"DROP ROLE {quoted}")


def server_env(**extra) -> dict:
    """Environment of a server sharing this process's database, Redis and signing key."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "TIMERS_IN_PROCESS": "0",
        "PYTHONUNBUFFERED": "1",
        # Not the demo's anchor file under var/ (another database): a test that needs anchors
        # passes a file of its own.
        "AUDIT_ANCHOR_PATH": "off",
    }
    env.pop("DJANGO_DEBUG", None)
    env.update({key: str(value) for key, value in extra.items()})
    return env


@contextlib.contextmanager
def daphne(port: int, env: dict, log_path: Path, startup_timeout: float = 30.0):
    """Run `daphne config.asgi:application` on 127.0.0.1:`port` until the block ends."""
    executable = Path(sys.executable).with_name("daphne")
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [str(executable), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"daphne on port {port} stopped: see {log_path}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"daphne on port {port} did not start: see {log_path}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def session_for(user) -> str:
    """A signed-in session of `user` in the database; returns the cookie header value."""
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def ws_connect(port: int, cookie: str, **kwargs):
    """Open the notifications socket on a server as a browser of that origin would."""
    from websockets.asyncio.client import connect

    return connect(
        f"ws://127.0.0.1:{port}/ws/notifications/",
        additional_headers={"Cookie": cookie},
        origin=f"http://127.0.0.1:{port}",
        **kwargs,
    )
