"""The dispatcher of viewflow's database timers (response deadlines): one sweep, and a loop.

`make demo` runs the loop in a thread of the server process (embedded mode: one process, the
in-memory channel layer); production runs `manage.py run_timers` as its own long-running process
(or `manage.py workflow_timers` from cron). Only one dispatcher should run at a time."""

import logging
import threading

from django.db import close_old_connections
from viewflow.workflow.timers import fire_due_conditions, fire_due_start_timers, fire_due_timers

from audit import chain
from casework import services as case_services
from notifications import outbox

logger = logging.getLogger(__name__)


def sweep() -> int:
    """Fire every due timer once; return how many fired."""
    return fire_due_timers() + fire_due_start_timers() + fire_due_conditions()


def loop(interval: float, stop: threading.Event | None = None) -> None:
    """Sweep every `interval` seconds until `stop` is set. Outside any request: drop the
    connections that went stale between sweeps, as Django does around each request."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            close_old_connections()
            fired = sweep()
            case_services.remind_interventions_due()  # once per intervention, the day before
            outbox.run_periodic()  # the same loop sends the e-mails (outbox, daily digest)
            chain.log_heads_daily()  # the audit chains' heads, kept in the log (audit_verify --expect-head)
            if fired:
                logger.info("timers: %s fired", fired)
        except Exception:  # a failing sweep must not stop the next ones
            logger.exception("timers: sweep failed")
        stop.wait(interval)


def start_in_background(interval: float) -> threading.Thread:
    thread = threading.Thread(target=loop, args=(interval,), name="workflow-timers", daemon=True)
    thread.start()
    return thread
