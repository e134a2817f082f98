"""The outbox under crashes: a real SMTP server on 127.0.0.1 and a real `manage.py run_timers`
process, killed with SIGKILL each time the server has taken an e-mail but before it answers (the
worst moment: the server holds the message, the row is not marked sent). Every e-mail must arrive;
the only duplicates are those interrupted sends, at most one each, with the same Message-ID, once
their claim has expired (OUTBOX_CLAIM_TIMEOUT, short here)."""

import collections
import email
import socketserver
import subprocess
import sys
import threading
import time

import pytest

from notifications import outbox
from notifications.models import OutboxEmail
from tests import live
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

EMAILS = 12
KILL_AT = {2, 5, 8}  # the arrivals after which the worker is killed, before the server's answer
CLAIM_TIMEOUT = 2  # seconds (OUTBOX_CLAIM_TIMEOUT of the worker)
MARGIN = 15  # seconds: a restart of the worker (Django start-up) and a pass of its loop


class SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        self.reply("220 test ESMTP")
        while line := self.rfile.readline():
            verb = line.decode(errors="replace").strip().split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-test\r\n250 8BITMIME\r\n")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(data[1:] if data.startswith(b"..") else data)
                if not self.server.received(b"".join(lines)):
                    return  # the worker is killed while it waits for this answer
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                self.reply("250 ok")


class SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), SMTPHandler)
        self.lock = threading.Lock()
        self.arrivals: list[tuple[str, float]] = []  # (Message-ID, when the server took it)
        self.kill_now = threading.Event()
        self.killed = threading.Event()

    def received(self, raw: bytes) -> bool:
        """Take the message; False (no answer) when the worker is to be killed now."""
        message_id = email.message_from_bytes(raw)["Message-ID"]
        with self.lock:
            self.arrivals.append((message_id, time.monotonic()))
            kill = len(self.arrivals) in KILL_AT
        if kill:
            self.killed.clear()
            self.kill_now.set()
            self.killed.wait(10)
            return False
        return True


def start_worker(env, log):
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_timers", "--interval", "0.2"],
        cwd=live.ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_every_email_arrives_through_kills_with_duplicates_bounded_and_labelled(tmp_path):
    pks = [
        OutboxEmail.objects.create(
            recipient=user,
            to=user.email,
            subject=f"Courriel {n}",
            body_text="Bonjour",
            body_html="<p>Bonjour</p>",
        ).pk
        for n, user in enumerate(UserFactory.create_batch(EMAILS))
    ]
    server = SMTPServer()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    env = live.server_env(
        EMAIL_MODE="smtp",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=server.server_address[1],
        EMAIL_TIMEOUT=1,
        OUTBOX_CLAIM_TIMEOUT=CLAIM_TIMEOUT,
        DIGEST_HOUR=23,
    )
    log = open(tmp_path / "run_timers.log", "wb")
    worker = start_worker(env, log)
    kills = 0
    try:
        give_up = time.monotonic() + 90
        while OutboxEmail.objects.filter(sent_at__isnull=True).exists():
            assert time.monotonic() < give_up, (tmp_path / "run_timers.log").read_text()
            if server.kill_now.wait(0.1):
                worker.kill()  # SIGKILL: no clean-up, the claim stays
                worker.wait()
                kills += 1
                server.kill_now.clear()
                server.killed.set()
                worker = start_worker(env, log)
            assert worker.poll() is None, (tmp_path / "run_timers.log").read_text()
    finally:
        worker.kill()
        worker.wait()
        log.close()
        server.shutdown()
        server.server_close()

    assert kills == len(KILL_AT)
    with server.lock:
        arrivals = list(server.arrivals)
    times = collections.defaultdict(list)
    for message_id, when in arrivals:
        times[message_id].append(when)
    assert set(times) == {outbox.message_id(pk) for pk in pks}  # every e-mail, each labelled by its row
    duplicated = {message_id: when for message_id, when in times.items() if len(when) > 1}
    # Each kill interrupted one send after the server took it: that e-mail, and only it, came twice.
    assert len(duplicated) == kills and all(len(when) == 2 for when in duplicated.values())
    assert len(arrivals) - EMAILS == len(duplicated)
    for when in duplicated.values():
        held = when[1] - when[0]
        assert CLAIM_TIMEOUT - 0.5 <= held <= CLAIM_TIMEOUT + MARGIN, held  # re-sent once its claim expired
