"""The dispatcher of viewflow's database timers (response deadlines): one sweep, and a loop.

`make demo` runs the loop in a thread of the server process (embedded mode: one process, the
in-memory channel layer); production runs `manage.py run_timers` as its own long-running process
(or `manage.py workflow_timers` from cron). Only one dispatcher should run at a time."""

import logging
import threading

from django.db import close_old_connections, connections
from viewflow.workflow.timers import fire_due_conditions, fire_due_start_timers, fire_due_timers

from audit import chain
from casework import services as case_services
from notifications import outbox

logger = logging.getLogger(__name__)


def sweep() -> int:
    """Fire every due timer once; return how many fired."""
    return fire_due_timers() + fire_due_start_timers() + fire_due_conditions()


def deadlines_pass() -> int:
    """What must never wait for a mail server: the due timers, the intervention reminders (queued,
    not sent), the audit chains' heads in the log. Returns how many timers fired."""
    fired = sweep()
    case_services.remind_interventions_due()  # once per intervention, the day before
    chain.log_heads_daily()  # the audit chains' heads, kept in the log (audit_verify --expect-head)
    if fired:
        logger.info("timers: %s fired", fired)
    return fired


def _repeat(step, name: str, interval: float, stop: threading.Event) -> None:
    """Run `step` every `interval` seconds until `stop` is set. Outside any request: drop the
    connections that went stale between passes, as Django does around each request."""
    try:
        while not stop.is_set():
            try:
                close_old_connections()
                try:
                    step()
                finally:
                    # Given back (to the pool) between passes, not held while this thread waits.
                    close_old_connections()
            except Exception:  # a failing pass must not stop the next ones
                logger.exception("timers: %s pass failed", name)
            stop.wait(interval)
    finally:
        connections.close_all()  # this thread's own connections


def loop(interval: float, stop: threading.Event | None = None) -> None:
    """The deadlines in this thread, the e-mails (outbox, daily digest) in a second one, each
    every `interval` seconds until `stop` is set, and the audit anchors in a third (every
    `interval` seconds, at most a minute apart): a slow or silent mail server (each SMTP operation
    waits at most EMAIL_TIMEOUT) delays the e-mails, never a due deadline."""
    stop = stop or threading.Event()
    mail = threading.Thread(
        target=_repeat, args=(outbox.run_periodic, "e-mail", interval, stop), name="outbox", daemon=True
    )
    # The audit chains' heads, to the file outside the database, at least once a minute whatever
    # the interval: the entries written since the last anchor are the ones a deletion could hide.
    anchors = threading.Thread(
        target=_repeat,
        args=(chain.anchor_heads, "audit anchor", min(interval, chain.ANCHOR_INTERVAL), stop),
        name="audit-anchors",
        daemon=True,
    )
    mail.start()
    anchors.start()
    try:
        _repeat(deadlines_pass, "deadline", interval, stop)
    finally:
        stop.set()  # Ctrl+C, or the caller's stop: the e-mail thread ends after its current send
        mail.join(timeout=5)
        anchors.join(timeout=5)


def start_in_background(interval: float) -> threading.Thread:
    thread = threading.Thread(target=loop, args=(interval,), name="workflow-timers", daemon=True)
    thread.start()
    return thread
