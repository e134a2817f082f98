"""Hash chain of the audit entries: append under a lock, verify, name what was tampered with."""

import collections
import contextlib
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

logger = logging.getLogger(__name__)

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


# The columns that may hold personal data or free text (old and new values of the fields, the
# object's name, the page seen). The chain covers them through `content_digest` only, so that the
# anonymisation of a case can replace them (`redact`) without breaking the chain.
REDACTABLE = ("changes", "changes_text", "object_repr", "serialized_data", "additional_data")
REDACTED = "[anonymisé]"


def _json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _utc(moment) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(entry) -> bytes:
    """The content an entry's hash covers, as stable bytes (sorted JSON, UTC timestamp): every
    column but the redactable ones, which enter through their keyed digest `content_digest`."""
    content = {
        "chain": entry.chain,
        "seq": entry.seq,
        "content_type": entry.content_type_id,
        "object_pk": str(entry.object_pk),
        "object_id": entry.object_id,
        "action": entry.action,
        "actor": entry.actor_id,
        "actor_email": entry.actor_email,
        "cid": entry.cid,
        "remote_addr": _ip(entry.remote_addr),
        "remote_port": entry.remote_port,
        "timestamp": _utc(entry.timestamp),
        "content_digest": entry.content_digest,
    }
    return _json(content)


def _key() -> bytes:
    """The key that seals new entries."""
    return (settings.AUDIT_CHAIN_KEY or settings.SECRET_KEY).encode()


def _keys() -> list[bytes]:
    """Every key an entry may have been sealed with: the current one, then the former ones
    (AUDIT_CHAIN_KEY_FALLBACKS), so that the key can be rotated without losing the history."""
    return [_key(), *(key.encode() for key in getattr(settings, "AUDIT_CHAIN_KEY_FALLBACKS", []))]


def _sealed(expected: str, compute) -> bool:
    """`expected` is `compute(key)` for one of the keys (compared in constant time)."""
    return any(hmac.compare_digest(compute(key), expected or "") for key in _keys())


def _mac(*parts: bytes, key: bytes | None = None) -> str:
    return hmac.new(key or _key(), b"\n".join(parts), hashlib.sha256).hexdigest()


def _content(entry) -> bytes:
    return _json({name: getattr(entry, name) for name in REDACTABLE})


def content_digest(entry, key: bytes | None = None) -> str:
    """Keyed digest of the redactable content. Keyed, so that a short redacted text (a refusal
    reason, a name) cannot be found again by trying candidates against the digest kept after the
    redaction."""
    return _mac(b"content", _content(entry), key=key)


def entry_hash(prev_hash: str, entry, key: bytes | None = None) -> str:
    """HMAC-SHA256, keyed by AUDIT_CHAIN_KEY: without the key, nobody with database access can
    give a forged or edited entry a valid hash."""
    return hmac.new(key or _key(), prev_hash.encode() + b"\n" + canonical(entry), hashlib.sha256).hexdigest()


def redaction_hash(entry, key: bytes | None = None) -> str:
    """HMAC over the entry's hash, the time of its redaction and its redacted content: an entry
    marked redacted, or whose redacted content was changed, by someone without the key is named."""
    return _mac(
        b"redaction", entry.entry_hash.encode(), _utc(entry.redacted_at).encode(), _content(entry), key=key
    )


def _anchor_mac(anchor, key: bytes) -> str:
    return anchor_hash(anchor, key)


def anchor_hash(anchor, key: bytes | None = None) -> str:
    """HMAC over where a chain starts after a purge: a moved anchor (to hide the deletion of the
    oldest kept entries) is named by `verify`."""
    return _mac(
        b"anchor",
        anchor.chain.encode(),
        str(anchor.first_seq).encode(),
        anchor.prev_hash.encode(),
        str(anchor.purged).encode(),
        key=key,
    )


# The explicit acting user of the service running now (`audited_atomic` sets it from the
# service's `actor` argument): it signs the entries written outside a web request (management
# commands, a shell), where auditlog's middleware has set no actor.
_service_actor = ContextVar("audit_service_actor", default=None)


def _complete(entry) -> None:
    """Called at the INSERT itself, after auditlog's pre_save receivers set the request's actor and
    address: with no actor, the acting user of the running service signs the entry, and failing
    that the platform's system account (timers, automatic steps)."""
    from audit.actors import system_actor

    if entry.actor_id is None:
        actor = _service_actor.get()
        if actor is not None:
            entry.actor, entry.actor_email = actor, actor.email or None
        else:
            entry.actor, entry.actor_email = system_actor(), None
    if entry.remote_addr and _ip(entry.remote_addr) is None:
        entry.remote_addr = None  # not an address (a forged X-Forwarded-For): not recorded


# The chains whose lock the running transaction already holds: set by `audited_atomic` for the
# extent of its block, right after it took the change chain's lock (held until the transaction
# ends, so for the whole block). Inside it, taking that lock again (a nested service, the flow
# lock, each audit entry) would only repeat a query.
_held_chains = ContextVar("audit_held_chains", default=frozenset())


def holds_lock(chain: str = "change") -> bool:
    """The running transaction took `chain`'s lock at its start (`audited_atomic`) and still holds it."""
    return chain in _held_chains.get() and connection.in_atomic_block


def write_lock():
    """Take the change chain's lock now, at the start of a write transaction, before any row lock.

    The lock is held until commit. A transaction that locked a row (a case, a request) and then
    waited for this lock while another held it and waited for that row would deadlock on
    PostgreSQL, so every business write transaction takes this lock first: `audited_atomic` in the
    services, `ChainFirstLock` in the flows. SQLite needs nothing (BEGIN IMMEDIATE already
    serialises writers at the start). Nothing to do when the transaction already holds it.

    Returns the chain's head as the lock found it (PostgreSQL), or None."""
    if not holds_lock("change"):
        return _lock("change")
    return None


def _lock(chain: str):
    """One writer per chain at a time, until the transaction ends. PostgreSQL: the chain's
    advisory lock, taken by `audit_chain_lock` (migration 0006), which then reads, in a statement
    of its own whose snapshot follows the lock, the head the next entry follows — (position, hash)
    as the previous writer committed it —, all in one round trip. SQLite: transactions are BEGIN
    IMMEDIATE, so writers are already serialised; None."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT head_seq, head_hash FROM audit_chain_lock(%s)", [chain])
            return cursor.fetchone()
    return None


# The head each chain's lock returned, for the transaction's next entry of that chain only: `seal`
# takes it (and drops it) instead of reading the head again. Shared by the nested blocks of one
# transaction that take a lock (`_audited`, `append`), dropped when the outermost one ends. The head
# is used only if no savepoint was opened since the lock returned it (Django counts them): then no
# entry of the chain was written since (each one drops it) and none can have been rolled back. The
# INSERT of an entry opening a savepoint first (a system account created to sign it, a nested
# entry) makes `seal` read the head again.
_locked_heads: ContextVar[dict | None] = ContextVar("audit_locked_heads", default=None)


@contextlib.contextmanager
def _locked_head(chain: str, head):
    heads, token = _locked_heads.get(), None
    if heads is None:
        heads = {}
        token = _locked_heads.set(heads)
    if head is None:
        heads.pop(chain, None)
    else:
        heads[chain] = (head, connection.savepoint_state)
    try:
        yield
    finally:
        if token is not None:
            _locked_heads.reset(token)


def _take_locked_head(chain: str):
    """The head the chain's lock returned, if it is still the head (see `_locked_heads`); dropped."""
    heads = _locked_heads.get()
    kept = heads.pop(chain, None) if heads else None
    if kept is None or kept[1] != connection.savepoint_state:
        return None
    return kept[0]


def append(entry, *args, **kwargs) -> None:
    """Save a new entry at the end of its chain, one writer per chain at a time; `seal` runs
    inside the INSERT (AuditEntry._do_insert)."""
    from django.db.models import Model

    entry.chain = chain_of(entry)
    if holds_lock(entry.chain):
        # Inside a business transaction that took this chain's lock first (`audited_atomic`): the
        # lock is held until its commit, and a failed INSERT fails the whole transaction (auditlog
        # re-raises, and the service's block rolls back), so neither the lock query nor a savepoint
        # of its own is needed.
        Model.save(entry, *args, **kwargs)
        return
    with transaction.atomic():
        with _locked_head(entry.chain, _lock(entry.chain)):
            Model.save(entry, *args, **kwargs)


def _head(chain: str) -> tuple[int, str]:
    """(position, hash) the chain's next entry follows: its last entry's, else (the chain purged
    whole, or never written) the purge anchor's first position minus one and the hash it follows,
    else (0, GENESIS) — what `audit_chain_lock` returns on PostgreSQL. Written out rather than
    built by the ORM: it runs at audited saves, and building and compiling the queryset took longer
    than running it (bench/write_path)."""
    from audit.models import AuditEntry, ChainAnchor

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT seq, entry_hash FROM {AuditEntry._meta.db_table} WHERE chain = %s"
            " ORDER BY seq DESC LIMIT 1",
            [chain],
        )
        found = cursor.fetchone()
    if found is not None:
        return found[0], found[1]
    anchor = ChainAnchor.objects.filter(chain=chain).first()
    return (anchor.first_seq - 1, anchor.prev_hash) if anchor else (0, GENESIS)


def seal(entry) -> None:
    """Give the entry its position and hashes, under the chain's lock, at the INSERT: after the
    head the lock returned (once), else the head read now."""
    _complete(entry)  # may write an entry of its own first (the system account's creation)
    last = _take_locked_head(entry.chain)
    if last is None:
        last = _head(entry.chain)
    entry.seq, entry.prev_hash = last[0] + 1, last[1]
    entry.content_digest = content_digest(entry)
    entry.entry_hash = entry_hash(entry.prev_hash, entry)


@dataclass(frozen=True)
class Problem:
    chain: str
    seq: int
    entry_id: int | None
    # "edited or forged", "missing (…)", "inserted or moved", "broken link", "anchor edited or forged"
    kind: str

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
        if anchor is not None and not _sealed(anchor.anchor_hash, functools.partial(_anchor_mac, anchor)):
            problems.append(Problem(chain, anchor.first_seq, None, "anchor edited or forged"))
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
            if not _intact(entry):
                problems.append(Problem(chain, entry.seq, entry.pk, "edited or forged"))
            expected_seq, expected_prev = max(expected_seq, entry.seq + 1), entry.entry_hash
    return problems


def heads() -> dict[str, tuple[int, str]]:
    """The last entry of each chain: {chain: (position, hash)}. Kept outside the database (the
    logs, a ticket, a printout), a head lets `check_head` prove later that no entry after it was
    cut off the end of the chain — which the chain alone cannot show."""
    from audit.models import AuditEntry, Chain

    found = {}
    for chain in Chain.values:
        entries = AuditEntry.objects.filter(chain=chain).order_by("-seq")
        last = entries.values_list("seq", "entry_hash").first()
        if last is not None:
            found[chain] = (last[0], last[1])
    return found


_heads_logged_at = None


def log_heads_daily() -> bool:
    """Write the chains' heads to the application log once a day (the background loop calls it):
    the log, kept apart from the database, then holds a head to check against. True if written."""
    global _heads_logged_at
    now = time.monotonic()
    if _heads_logged_at is not None and now - _heads_logged_at < 86400:
        return False
    _heads_logged_at = now
    found = heads()
    logger.info("audit heads: %s", " ".join(f"{c}:{seq}:{h}" for c, (seq, h) in sorted(found.items())))
    return True


def check_head(chain: str, seq: int, expected_hash: str) -> Problem | None:
    """A head recorded earlier is still in the chain, unchanged (positions purged since then, behind
    the signed anchor, are accepted)."""
    from audit.models import AuditEntry, ChainAnchor

    anchor = ChainAnchor.objects.filter(chain=chain).first()
    if anchor is not None and seq < anchor.first_seq:
        return None
    entry = AuditEntry.objects.filter(chain=chain, seq=seq).values_list("pk", "entry_hash").first()
    if entry is None:
        return Problem(chain, seq, None, "recorded head missing (entries cut off the end)")
    if not hmac.compare_digest(entry[1], expected_hash):
        return Problem(chain, seq, entry[0], "recorded head replaced")
    return None


# --- Anchors outside the database -------------------------------------------------------------
#
# The chain alone cannot show that its newest entries, a whole chain or every entry were deleted:
# nothing follows them. The background loop therefore appends each chain's head, whenever it
# moved, to a file outside the database (AUDIT_ANCHOR_PATH), one signed line each:
#
#     <time UTC> <chain> <position> <entry hash> <table's storage> <HMAC of the rest>
#
# `check_anchors` (audit_verify) takes the latest line of each chain and looks for its entry.
# The table's storage is PostgreSQL's file node of the audit table (a TRUNCATE gives the table a
# new one: the check can then say so), "-" on SQLite. Entries written after the latest anchor are
# protected by the chain only (the honest window): at most ANCHOR_INTERVAL seconds while the loop
# runs; older unanchored entries are named, as a loop that stopped anchoring.

ANCHOR_INTERVAL = 60  # seconds at most between two passes of the loop's anchoring
ANCHOR_GRACE = 600  # an entry unanchored for longer: the loop is not anchoring
ANCHOR_LINE = re.compile(
    r"^(?P<time>[0-9T:.+-]{20,40}) (?P<chain>[a-z]{1,10}) (?P<seq>[0-9]{1,18}) (?P<hash>[0-9a-f]{64})"
    r" (?P<store>[0-9]{1,20}|-) (?P<mac>[0-9a-f]{64})$"
)
ANCHOR_FILE = "anchor file"  # the `chain` of a problem of the file itself
ANCHOR_CANDIDATES = 64  # the newest lines of each chain checked against the key


@dataclass(frozen=True)
class Anchor:
    time: datetime
    chain: str
    seq: int
    hash: str
    store: str
    line: int


def _anchor_line_mac(moment: str, chain: str, seq: int, entry_hash: str, store: str, key=None) -> str:
    return _mac(
        b"anchor-file",
        moment.encode(),
        chain.encode(),
        str(seq).encode(),
        entry_hash.encode(),
        store.encode(),
        key=key,
    )


def _store() -> str:
    """What identifies the audit table's storage: a TRUNCATE changes it, a DELETE does not."""
    from audit.models import AuditEntry

    if connection.vendor != "postgresql":
        return "-"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_filenode(%s::regclass)", [AuditEntry._meta.db_table])
        return str(cursor.fetchone()[0])


# The heads this process wrote last, per file and chain: a head that did not move is not written again.
_anchored: dict[tuple[str, str], tuple[int, str]] = {}


def anchor_heads(path: str | None = None) -> int:
    """Append the head of each chain that moved since this process last wrote it to the anchor file
    (AUDIT_ANCHOR_PATH; nothing when it is off), one signed line per chain, in one write, flushed
    to the disk. Returns the number of lines written."""
    from django.utils import timezone

    path = path or settings.AUDIT_ANCHOR_PATH
    if not path:
        return 0
    found = heads()
    moved = {c: head for c, head in sorted(found.items()) if _anchored.get((path, c)) != head}
    if not moved:
        return 0
    store, moment = _store(), _utc(timezone.now())
    lines = "".join(
        f"{moment} {c} {seq} {h} {store} {_anchor_line_mac(moment, c, seq, h, store)}\n"
        for c, (seq, h) in moved.items()
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, lines.encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    for c, head in moved.items():
        _anchored[(path, c)] = head
    return len(moved)


def read_anchors(path: str) -> tuple[dict[str, Anchor], list[Problem]]:
    """The latest anchor of each chain in the file that its key's holder wrote, and a problem for
    each line that is not an anchor and each line that claims to be a later anchor but was not
    signed with the key. Every line is parsed; only the newest lines of each chain (the last
    ANCHOR_CANDIDATES, of which the highest position signed with the key is the latest anchor)
    are checked against the key: a year of anchors is a million lines, and forged lines appended
    after the real ones are named all the same."""
    from audit.models import Chain

    candidates, problems = {}, []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            match = ANCHOR_LINE.match(line.rstrip("\n"))
            if match is None or match["chain"] not in Chain.values:
                problems.append(Problem(ANCHOR_FILE, number, None, "line edited or forged"))
                continue
            newest = candidates.setdefault(match["chain"], collections.deque(maxlen=ANCHOR_CANDIDATES))
            newest.append((int(match["seq"]), number, match.group("time", "hash", "store", "mac")))
    latest = {}
    for chain, found in candidates.items():
        for seq, number, (moment, entry_hash, store, mac) in sorted(
            found, key=lambda item: item[:2], reverse=True
        ):
            signed = functools.partial(_anchor_line_mac, moment, chain, seq, entry_hash, store)
            if _sealed(mac, lambda key, signed=signed: signed(key=key)):
                latest[chain] = Anchor(datetime.fromisoformat(moment), chain, seq, entry_hash, store, number)
                break
            problems.append(Problem(ANCHOR_FILE, number, None, "line edited or forged"))
    problems.sort(key=lambda problem: problem.seq)
    return latest, problems


@dataclass
class AnchorReport:
    path: str | None
    latest: dict[str, Anchor]
    problems: list[Problem]
    unanchored: dict[str, int]  # entries written after the latest anchor, per chain


def check_anchors(now=None) -> AnchorReport:
    """The latest anchor of each chain against the database: its entry is still there, unchanged,
    or behind the chain's purge anchor. Names what happened when it is not: the newest entries
    deleted, the whole chain deleted, every entry deleted, the table truncated, the anchored entry
    replaced; and entries left unanchored for longer than ANCHOR_GRACE."""
    from django.utils import timezone

    from audit.models import AuditEntry, Chain, ChainAnchor

    now = now or timezone.now()
    path = settings.AUDIT_ANCHOR_PATH
    report = AnchorReport(path, {}, [], {})
    if not path:
        return report
    grace = now - timedelta(seconds=ANCHOR_GRACE)
    if not os.path.exists(path):
        if AuditEntry.objects.filter(timestamp__lt=grace).exists():
            report.problems.append(Problem(ANCHOR_FILE, 0, None, f"missing ({path})"))
        return report
    try:
        report.latest, report.problems = read_anchors(path)
    except OSError as error:
        report.problems.append(Problem(ANCHOR_FILE, 0, None, f"unreadable ({error.strerror})"))
        return report
    store = _store()
    table_empty = not AuditEntry.objects.exists()
    purged_to = dict(ChainAnchor.objects.values_list("chain", "first_seq"))
    for chain in Chain.values:
        anchor = report.latest.get(chain)
        entries = AuditEntry.objects.filter(chain=chain)
        after = entries.filter(seq__gt=anchor.seq) if anchor else entries
        if anchor is not None and anchor.seq >= purged_to.get(chain, 0):
            problem = _anchored_entry_problem(anchor, entries, store, table_empty)
            if problem is not None:
                report.problems.append(problem)
                continue
        report.unanchored[chain] = after.count()
        first = after.order_by("seq").values_list("seq", "pk", "timestamp").first()
        if first is not None and first[2] < grace:
            minutes = int((now - first[2]).total_seconds() // 60)
            report.problems.append(
                Problem(chain, first[0], first[1], f"not anchored outside the database for {minutes} min")
            )
    return report


def _anchored_entry_problem(anchor: Anchor, entries, store: str, table_empty: bool) -> Problem | None:
    found = entries.filter(seq=anchor.seq).values_list("pk", "entry_hash").first()
    if found is not None and hmac.compare_digest(found[1], anchor.hash):
        return None
    truncated = anchor.store != "-" and store != anchor.store
    last = entries.order_by("-seq").values_list("seq", flat=True).first()
    if truncated:
        kind = "table truncated (TRUNCATE)" + (
            "" if last is None else f", {entries.count()} entries written since"
        )
    elif found is not None:
        kind = "anchored entry replaced (newest entries deleted, others written in their place)"
    elif table_empty:
        kind = "every entry deleted (both chains)"
    elif last is None:
        kind = "whole chain deleted"
    elif last < anchor.seq:
        kind = f"newest entries deleted (the chain ends at #{last}, before the anchored #{anchor.seq})"
    else:
        kind = "anchored entry deleted"
    return Problem(anchor.chain, anchor.seq, found[0] if found else None, kind)


def _intact(entry) -> bool:
    """The entry's hash matches its columns, and its redactable content is the one the hash
    committed to (not redacted) or a redaction made with the key (redacted)."""
    if entry.redacted_at is None:
        content_ok = _sealed(entry.content_digest, lambda key: content_digest(entry, key))
    else:
        content_ok = _sealed(entry.redaction_hash, lambda key: redaction_hash(entry, key))
    return content_ok and _sealed(entry.entry_hash, lambda key: entry_hash(entry.prev_hash, entry, key))


# --- Retention: purge of a chain's oldest entries, redaction of an entry's content -------------


@dataclass(frozen=True)
class PurgePlan:
    chain: str
    first_kept: int  # position of the first entry kept: every entry before it goes
    count: int  # entries before it


def purge_plan(chain: str, cutoff) -> PurgePlan:
    """What a purge of `chain` at `cutoff` removes: the prefix of the chain before its first entry
    dated `cutoff` or later (every entry of that prefix is older than `cutoff`, and the kept part
    stays contiguous). When every entry is older, the whole chain goes: the anchor keeps the hash
    of the last one, the next entry follows it."""
    from audit.models import AuditEntry

    entries = AuditEntry.objects.filter(chain=chain)
    first_kept = entries.filter(timestamp__gte=cutoff).order_by("seq").values_list("seq", flat=True).first()
    if first_kept is None:
        last = entries.order_by("-seq").values_list("seq", flat=True).first()
        first_kept = (last or 0) + 1
    return PurgePlan(chain, first_kept, entries.filter(seq__lt=first_kept).count())


def purge(plan: PurgePlan, *, batch_size: int = 5000) -> int:
    """Delete the entries of `plan.chain` before `plan.first_kept`, `batch_size` positions at a
    time, oldest first. Each batch is one transaction under the chain's lock (so writers wait for
    one batch, not for the whole purge) that deletes the batch and moves the chain's anchor to the
    first remaining entry: after every batch, and if the purge stops midway, `verify()` passes.
    Returns the number of entries deleted.

    On PostgreSQL the batch goes through `audit_purge_batch` (migration 0005), a function owned by
    a keeper of the trail: the application's role cannot delete entries itself, and the function
    refuses a batch holding an entry younger than the chain's retention floor (PurgeRefused)."""
    from audit.models import AuditEntry, ChainAnchor

    removed = 0
    while True:
        with transaction.atomic():
            _lock(plan.chain)
            entries = AuditEntry.objects.filter(chain=plan.chain)
            start = entries.order_by("seq").values_list("seq", flat=True).first()
            if start is None or start >= plan.first_kept:
                break
            end = min(plan.first_kept, start + batch_size)
            batch = entries.filter(seq__lt=end)
            prev_hash = entries.filter(seq=end).values_list("prev_hash", flat=True).first()
            if prev_hash is None:  # everything before `end` goes and nothing follows yet
                prev_hash = batch.order_by("-seq").values_list("entry_hash", flat=True).first()
            if connection.vendor == "postgresql":
                deleted = _purge_batch_in_database(plan.chain, end, prev_hash, batch.count())
            else:
                deleted = batch._raw_delete(batch.db)
                anchor = ChainAnchor.objects.filter(chain=plan.chain).first()
                anchor = anchor or ChainAnchor(chain=plan.chain, purged=0)
                anchor.first_seq, anchor.prev_hash = end, prev_hash
                anchor.purged += deleted
                anchor.anchor_hash = anchor_hash(anchor)
                anchor.save()
            removed += deleted
    return removed


class PurgeRefused(Exception):
    """PostgreSQL refused a batch of the purge (retention floor, or a plan it does not accept)."""


def _purge_batch_in_database(chain: str, end: int, prev_hash: str, count: int) -> int:
    """One batch through the keeper's function: it deletes the entries before `end` and writes the
    anchor sealed here (the key stays out of the database), after checking what it can."""
    from django.db import DatabaseError

    from audit.models import ChainAnchor

    before = ChainAnchor.objects.filter(chain=chain).values_list("purged", flat=True).first() or 0
    anchor = ChainAnchor(chain=chain, first_seq=end, prev_hash=prev_hash, purged=before + count)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT audit_purge_batch(%s, %s, %s, %s, %s)",
                [chain, end, prev_hash, anchor.purged, anchor_hash(anchor)],
            )
            return cursor.fetchone()[0]
    except DatabaseError as error:
        raise PurgeRefused(str(error).splitlines()[0]) from error


def redacted_content(entry) -> dict:
    """What an entry's redactable columns hold once redacted: the names of the changed fields
    stay (what was changed), their values, the object's name and the extra data go."""
    changes = {name: REDACTED for name in entry.changes} if isinstance(entry.changes, dict) else None
    return {
        "changes": changes,
        "changes_text": "",
        "object_repr": REDACTED,
        "serialized_data": None,
        "additional_data": None,
    }


def redact(entries, *, at=None) -> tuple[int, list[int]]:
    """Replace the redactable content of `entries` (an AuditEntry queryset; the ones already
    redacted are left) and seal each redaction. Their chain stays verifiable: the entry's hash
    covers the digest of the content, which is kept. Call it inside the anonymisation's
    transaction (on PostgreSQL through the function `audit_redact`, the only way the application's
    role can change an entry: it writes the marker of `redacted_content` and nothing else).

    An entry whose content no longer matches its digest (edited in the database) is not redacted:
    redacting it would hide the tampering from `verify`. Returns (number redacted, ids left)."""
    from django.utils import timezone

    from audit.models import AuditEntry

    at = at or timezone.now()
    redacted, tampered = [], []
    for entry in entries.filter(redacted_at__isnull=True).order_by("pk"):
        if not _sealed(entry.content_digest, lambda key, entry=entry: content_digest(entry, key)):
            tampered.append(entry.pk)
            continue
        for name, value in redacted_content(entry).items():
            setattr(entry, name, value)
        entry.redacted_at = at
        entry.redaction_hash = redaction_hash(entry)
        redacted.append(entry)
    if redacted and connection.vendor == "postgresql":
        # Through the keeper's function (migration 0005): it writes the marker itself, so that the
        # application's role can redact an entry but never give it content of its choosing.
        with transaction.atomic(), connection.cursor() as cursor:
            for start in range(0, len(redacted), 500):
                batch = redacted[start : start + 500]
                cursor.execute(
                    "SELECT audit_redact(%s::bigint[], %s, %s::text[])",
                    [[entry.pk for entry in batch], at, [entry.redaction_hash for entry in batch]],
                )
    elif redacted:
        with transaction.atomic():
            AuditEntry.objects.bulk_update(
                redacted, [*REDACTABLE, "redacted_at", "redaction_hash"], batch_size=500
            )
    return len(redacted), tampered


@contextlib.contextmanager
def _audited():
    from audit import snapshots  # auditlog's receivers need the apps loaded

    with transaction.atomic(), snapshots.scope():
        if holds_lock("change"):  # a service inside a service: the outer one holds the lock
            yield
            return
        head = _lock("change")
        token = _held_chains.set(_held_chains.get() | {"change"})
        try:
            with _locked_head("change", head):
                yield
        finally:
            _held_chains.reset(token)


def audited_atomic(function=None):
    """`transaction.atomic()` that first takes the change chain's lock (see `write_lock`):
    a decorator (`@audited_atomic`) or a context manager (`with audited_atomic():`)."""
    if function is None:
        return _audited()

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        actor = kwargs.get("actor")
        token = _service_actor.set(actor if getattr(actor, "pk", None) is not None else None)
        try:
            with _audited():
                return function(*args, **kwargs)
        finally:
            _service_actor.reset(token)

    return wrapper
