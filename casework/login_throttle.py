"""Sign-in throttling per account, across addresses, beside django-axes' lock per address.

django-axes locks one account from one address after AXES_FAILURE_LIMIT failures: someone guessing
from many addresses (a botnet, a cloud of proxies) was never slowed. Here the failures of one account
(the username as typed, existing or not: nothing tells an account that exists from one that does
not) from every address over the last WINDOW count together. The first
LOGIN_ACCOUNT_FAILURE_LIMIT cost nothing; after them each further attempt waits a delay that doubles
with each new failure — 1 minute, 2, 4, 8... up to LOGIN_ACCOUNT_MAX_DELAY_MINUTES — counted from
the last failure, as progressive delays (rather than a lock-out) are what the CNIL and the ANSSI
recommend for passwords. An attempt made during the delay is refused before the password is
checked (429, with the wait in French on the login page), and it is not a failure: it neither
lengthens the delay nor reaches axes.

The real user is not locked out by someone else's guesses:
- from an address where the account signed in successfully in the last USUAL_ADDRESS_DAYS (axes'
  AccessLog), the delay does not apply (axes' own lock per address still does);
- elsewhere they wait at most LOGIN_ACCOUNT_MAX_DELAY_MINUTES, after which one attempt goes
  through. When the delay has passed, the next attempt claims the slot that follows the last
  failure in the cache (`cache.add`, atomic in Redis and in the local memory cache): of many
  attempts arriving at once from many addresses, one goes through, the others wait; its failure
  starts the next delay, its success ends the matter.

So an account guessed from any number of addresses gets LOGIN_ACCOUNT_FAILURE_LIMIT tries, then
about one per LOGIN_ACCOUNT_MAX_DELAY_MINUTES (with the defaults, some 100 a day instead of
AXES_FAILURE_LIMIT per address per AXES_COOLOFF_MINUTES). A fast script can still take the slot
each time it opens, ahead of a real user at a new address: that user then waits, or signs in from
an address they used before.
"""

import hashlib
import logging
import math
from datetime import timedelta

from axes.helpers import get_client_ip_address
from axes.models import AccessFailureLog, AccessLog
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max
from django.utils import timezone

logger = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)
USUAL_ADDRESS_DAYS = 30


def _delay(failures: int) -> timedelta:
    """The wait after `failures` failures in the window (none below the limit)."""
    over = failures - settings.LOGIN_ACCOUNT_FAILURE_LIMIT
    if over < 0:
        return timedelta(0)
    return timedelta(minutes=min(2 ** min(over, 20), settings.LOGIN_ACCOUNT_MAX_DELAY_MINUTES))


def _usual_address(username: str, address: str | None, now) -> bool:
    if not address:
        return False
    since = now - timedelta(days=USUAL_ADDRESS_DAYS)
    return AccessLog.objects.filter(username=username, ip_address=address, attempt_time__gte=since).exists()


def _slot_key(username: str, last_failure) -> str:
    """The one attempt allowed after the delay that follows this last failure."""
    return f"login-slot:{hashlib.sha256(username.encode()).hexdigest()}:{last_failure.timestamp()}"


def seconds_to_wait(request, username: str) -> int:
    """0 when this attempt on `username` may check its password now, else the seconds to wait."""
    now = timezone.now()
    failures = AccessFailureLog.objects.filter(username=username, attempt_time__gte=now - WINDOW).aggregate(
        count=Count("pk"), last=Max("attempt_time")
    )
    delay = _delay(failures["count"])
    if not delay:
        return 0
    if _usual_address(username, get_client_ip_address(request), now):
        return 0
    remaining = failures["last"] + delay - now
    slot = _slot_key(username, failures["last"])
    if remaining.total_seconds() <= 0 and cache.add(slot, 1, timeout=delay.total_seconds()):
        return 0  # the delay has passed and this attempt took the slot (its failure opens the next)
    wait = max(remaining.total_seconds(), 0) or delay.total_seconds()  # slot taken: one more delay
    logger.warning(
        "sign-in: attempt refused before the password check, %d failures on the account in 24 h (wait %d s)",
        failures["count"],
        wait,
    )
    return math.ceil(wait)
