"""Fault injection for the end-to-end tests: a Redis of the test's own and daphne servers that the
test stops and starts again at will (tests/e2e/test_faults.py).

The Redis is never the machine's shared one: a `redis-server` on a free loopback port, nothing saved
to disk (`--save "" --appendonly no`), its files in the test's temporary directory. Stopped and
started again, it comes back empty, as a production Redis restarted without persistence: every
group membership of the channel layer is forgotten."""

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

from tests import live


class RedisServer:
    """`redis-server` on 127.0.0.1:`port`, started and stopped by the test."""

    def __init__(self, directory: Path, port: int | None = None):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or live.free_port()
        self.process = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        import redis

        self.starts += 1
        executable = shutil.which("redis-server") or "redis-server"
        self.process = subprocess.Popen(
            [
                executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--logfile", str(self.directory / f"redis-{self.starts}.log"),
                "--daemonize", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while True:  # readiness poll, as tests/live.daphne waits for its port
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} stopped: see {self.directory}")
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start: see {self.directory}")
            time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


class Daphne:
    """A daphne server (tests/live.daphne) on a fixed port, stopped and started again by the test;
    one log file per run (`<name>-<n>.log`)."""

    def __init__(self, port: int, env: dict, log_dir: Path, name: str = "daphne"):
        self.port, self.env, self.log_dir, self.name = port, env, log_dir, name
        self.runs = 0
        self._context = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.log_dir / f"{self.name}-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        self._context = live.daphne(self.port, self.env, self.log)
        self._context.__enter__()

    def stop(self) -> None:
        if self._context is not None:
            context, self._context = self._context, None
            context.__exit__(None, None, None)

    def logs(self) -> str:
        return "".join(
            f"--- {self.name} run {run} ---\n"
            + (self.log_dir / f"{self.name}-{run}.log").read_text(errors="replace")[-4000:]
            for run in range(1, self.runs + 1)
            if (self.log_dir / f"{self.name}-{run}.log").exists()
        )


class ServerErrors:
    """Every response of 500 or more received by the pages of the browser contexts watched: a write
    (or a read) that failed on the server."""

    def __init__(self):
        self.seen = []

    def _on_response(self, response) -> None:
        if response.status >= 500:
            self.seen.append(f"{response.status} {response.request.method} {response.url}")

    def watch(self, page) -> None:
        page.context.on("response", self._on_response)
