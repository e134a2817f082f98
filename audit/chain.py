"""Hash chain of the audit entries: append under a lock, verify, name what was tampered with."""

import contextlib
import functools
import hashlib
import hmac
import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC

from django.conf import settings
from django.db import connection, transaction

GENESIS = "0" * 64


class ImmutableEntryError(Exception):
    pass


def chain_of(entry) -> str:
    from audit.models import AuditEntry, Chain

    return Chain.ACCESS if entry.action == AuditEntry.Action.ACCESS else Chain.CHANGE


def _ip(value) -> str | None:
    """One spelling of an address, whatever the database gives back (PostgreSQL's inet and
    Django's cleaning write some IPv6 forms differently)."""
    if not value:
        return None
    try:
        return ipaddress.ip_address(str(value).split("%", 1)[0]).compressed
    except ValueError:
        return None


def canonical(entry) -> bytes:
    """The content an entry's hash covers, as stable bytes (sorted JSON, UTC timestamp)."""
    content = {
        "chain": entry.chain,
        "seq": entry.seq,
        "content_type": entry.content_type_id,
        "object_pk": str(entry.object_pk),
        "object_id": entry.object_id,
        "object_repr": entry.object_repr,
        "action": entry.action,
        "changes": entry.changes,
        "changes_text": entry.changes_text,
        "serialized_data": entry.serialized_data,
        "actor": entry.actor_id,
        "actor_email": entry.actor_email,
        "cid": entry.cid,
        "remote_addr": _ip(entry.remote_addr),
        "remote_port": entry.remote_port,
        "timestamp": entry.timestamp.astimezone(UTC).isoformat(timespec="microseconds"),
        "additional_data": entry.additional_data,
    }
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def _key() -> bytes:
    return (settings.AUDIT_CHAIN_KEY or settings.SECRET_KEY).encode()


def entry_hash(prev_hash: str, entry) -> str:
    """HMAC-SHA256, keyed by AUDIT_CHAIN_KEY: without the key, nobody with database access can
    give a forged or edited entry a valid hash."""
    return hmac.new(_key(), prev_hash.encode() + b"\n" + canonical(entry), hashlib.sha256).hexdigest()


def _complete(entry) -> None:
    """Called at the INSERT itself, after auditlog's pre_save receivers set the request's actor and
    address: with no actor, the platform's system account signs the entry."""
    from audit.actors import system_actor

    if entry.actor_id is None:
        entry.actor = system_actor()
        entry.actor_email = None
    if entry.remote_addr and _ip(entry.remote_addr) is None:
        entry.remote_addr = None  # not an address (a forged X-Forwarded-For): not recorded


def write_lock() -> None:
    """Take the change chain's lock now, at the start of a write transaction, before any row lock.

    The lock is held until commit. A transaction that locked a row (a case, a request) and then
    waited for this lock while another held it and waited for that row would deadlock on
    PostgreSQL, so every business write transaction takes this lock first: `audited_atomic` in the
    services, `ChainFirstLock` in the flows. SQLite needs nothing (BEGIN IMMEDIATE already
    serialises writers at the start)."""
    _lock("change")


def _lock(chain: str) -> None:
    """One writer per chain at a time. PostgreSQL: a transaction-level advisory lock; SQLite:
    transactions are BEGIN IMMEDIATE, so writers are already serialised."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"audit.{chain}"])


def append(entry, *args, **kwargs) -> None:
    """Save a new entry at the end of its chain, one writer per chain at a time; `seal` runs
    inside the INSERT (AuditEntry._do_insert)."""
    from django.db.models import Model

    entry.chain = chain_of(entry)
    with transaction.atomic():
        _lock(entry.chain)
        Model.save(entry, *args, **kwargs)


def seal(entry) -> None:
    """Give the entry its position and hashes, under the chain's lock, at the INSERT."""
    from audit.models import AuditEntry, ChainAnchor

    _complete(entry)
    last = AuditEntry.objects.filter(chain=entry.chain).order_by("-seq").values("seq", "entry_hash").first()
    if last is None:
        anchor = ChainAnchor.objects.filter(chain=entry.chain).first()
        entry.seq, entry.prev_hash = (anchor.first_seq, anchor.prev_hash) if anchor else (1, GENESIS)
    else:
        entry.seq, entry.prev_hash = last["seq"] + 1, last["entry_hash"]
    entry.entry_hash = entry_hash(entry.prev_hash, entry)


@dataclass(frozen=True)
class Problem:
    chain: str
    seq: int
    entry_id: int | None
    kind: str  # "edited or forged", "missing (…)", "inserted or moved", "broken link"

    def __str__(self):
        where = f"{self.chain} #{self.seq}" + (f" (id {self.entry_id})" if self.entry_id else "")
        return f"{where}: {self.kind}"


def verify(batch_size: int = 2000) -> list[Problem]:
    """Every problem of every chain, in order. An empty list means the trail is intact."""
    from audit.models import AuditEntry, Chain, ChainAnchor

    problems = []
    anchors = {anchor.chain: anchor for anchor in ChainAnchor.objects.all()}
    for chain in Chain.values:
        anchor = anchors.get(chain)
        expected_seq, expected_prev = (anchor.first_seq, anchor.prev_hash) if anchor else (1, GENESIS)
        entries = AuditEntry.objects.filter(chain=chain).order_by("seq", "pk")
        for entry in entries.iterator(chunk_size=batch_size):
            if entry.seq > expected_seq:
                problems.append(
                    Problem(
                        chain, expected_seq, None, f"missing ({entry.seq - expected_seq} entries deleted)"
                    )
                )
            elif entry.seq < expected_seq:
                problems.append(Problem(chain, entry.seq, entry.pk, "inserted or moved"))
            if entry.prev_hash != expected_prev and entry.seq >= expected_seq:
                problems.append(Problem(chain, entry.seq, entry.pk, "broken link"))
            if entry_hash(entry.prev_hash, entry) != entry.entry_hash:
                problems.append(Problem(chain, entry.seq, entry.pk, "edited or forged"))
            expected_seq, expected_prev = max(expected_seq, entry.seq + 1), entry.entry_hash
    return problems


@contextlib.contextmanager
def _audited():
    with transaction.atomic():
        write_lock()
        yield


def audited_atomic(function=None):
    """`transaction.atomic()` that first takes the change chain's lock (see `write_lock`):
    a decorator (`@audited_atomic`) or a context manager (`with audited_atomic():`)."""
    if function is None:
        return _audited()

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with _audited():
            return function(*args, **kwargs)

    return wrapper
