"""End-to-end tests: real browsers (Playwright driving Debian's Chromium, /usr/bin/chromium,
headless, background networking off; never a downloaded browser) against a real daphne server
started on a free port, sharing the test database (SQLite file locally, PostgreSQL in CI's second
pass) and, when it is reachable, Redis as the channel layer, so that a command run in another
process (the timers) reaches the browsers' sockets as in production.

Locally these tests skip when Chromium (or, for what needs it, Redis) is absent; in CI (`CI=true`)
a missing tool is a failure. The data is written by the test through the factories and the
services, committed (`transactional_db`), before the browsers open their pages; everything the
users do afterwards goes through the browsers.

Fixtures: `server` (the daphne, its base URL and environment), `open_as(user)` (a browser page
signed in as `user`, its own context: cookies, storage), `run_command(name, ...)` (a management
command in another process, on the server's database and channel layer)."""

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import live

CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# The channel layer of the e2e servers when the run has none of its own (SQLite pass): db 12 of
# the local Redis, one prefix per xdist worker (settings.CHANNEL_LAYERS).
DEFAULT_REDIS = "redis://127.0.0.1:6379/12"
IN_CI = os.environ.get("CI", "").lower() == "true"
# The guide's screenshots are refreshed only when asked (`make captures`): a plain `make test`
# writes them under var/ (ignored by git), so that it leaves the working tree as it found it.
GUIDE_CAPTURES = live.ROOT / "docs" / "guide" / "captures"
SCREENSHOTS = GUIDE_CAPTURES if os.environ.get("GUIDE_CAPTURES") == "1" else live.ROOT / "var" / "captures"


def missing(what: str):
    """Skip locally, fail in CI: CI must run every end-to-end test."""
    if IN_CI:
        pytest.fail(f"{what} (required in CI)")
    pytest.skip(what)


def redis_url() -> str | None:
    """The Redis the e2e servers use as channel layer: the run's own, else the local one if it
    answers, else none (one process: the in-memory layer)."""
    url = os.environ.get("REDIS_URL") or os.environ.get("E2E_REDIS_URL", DEFAULT_REDIS)
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:  # noqa: BLE001 - any failure means: no Redis here
        return None
    return url


@pytest.fixture(scope="package")
def chromium():
    """One browser for the end-to-end tests of a worker, closed after the last of them: Playwright's
    synchronous API keeps an event loop running in the test's thread while it is open, which the
    other tests (async_to_sync) must not inherit. Meanwhile Django's guard against ORM calls from
    async code is lifted for the tests' own synchronous database work (never for the servers)."""
    if not CHROMIUM.exists():
        missing(f"Chromium absent ({CHROMIUM}): apt-get install chromium")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def _rings_from_a_helper_thread(monkeypatch):
    """Services called by a test ring the sockets after commit with async_to_sync, which refuses to
    run in a thread where Playwright's event loop runs (the ring was lost, with an error in the
    log): the test's rings go from a helper thread instead (through Redis, when the run has one)."""
    from notifications import delivery

    original = delivery._send

    def send(group, message, **options):
        thread = threading.Thread(target=original, args=(group, message), kwargs=options)
        thread.start()
        thread.join(10)

    monkeypatch.setattr(delivery, "_send", send)


@dataclass
class Server:
    port: int
    env: dict
    log: Path
    redis: str | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def server_settings():
    """Extra environment of the test's server (a test module overrides this fixture)."""
    return {}


@pytest.fixture
def server(transactional_db, tmp_path, settings, server_settings):
    """A daphne server on a free port, on the test database; Redis as its channel layer when
    reachable. Its log is printed if the test fails (pytest shows the captured output)."""
    redis = redis_url()
    extra = {"REDIS_URL": redis} if redis else {}
    extra.update(server_settings)
    port = live.free_port()
    env = live.server_env(SITE_URL=f"http://127.0.0.1:{port}", ALLOWED_HOSTS="127.0.0.1,localhost", **extra)
    if not redis:
        env.pop("REDIS_URL", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the server keeps Django's async safety
    log = tmp_path / f"daphne-{port}.log"
    with live.daphne(port, env, log):
        yield Server(port=port, env=env, log=log, redis=redis)
    print(log.read_text(errors="replace")[-4000:])


@pytest.fixture
def open_as(chromium, server):
    """`open_as(user, path="/")`: a page of a new browser context signed in as `user` (a session
    made in the database, as after the login form), at `path`."""
    contexts = []

    def _open(user, path="/"):
        name, value = live.session_for(user).split("=", 1)
        context = chromium.new_context(base_url=server.url, locale="fr-FR", timezone_id="Europe/Paris")
        context.add_cookies([{"name": name, "value": value, "url": server.url}])
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(path)
        return page

    yield _open
    for context in contexts:
        context.close()


@pytest.fixture
def run_command(server):
    """Run a management command in another process, on the server's database and channel layer
    (as `run_timers` does in production). Returns its output."""

    def _run(*args):
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=live.ROOT,
            env=server.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    return _run


@pytest.fixture
def needs_redis(server):
    """For what crosses processes live (a command's rings reaching the browsers)."""
    if not server.redis:
        missing("Redis unreachable: the servers run with the in-memory channel layer")


def screenshot(page, name: str) -> Path:
    """Save a screenshot of the page for the user guide (docs/guide/captures/<name>.png with
    GUIDE_CAPTURES=1, else var/captures/<name>.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
