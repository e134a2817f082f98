"""Writes of the audit trail that are not model changes: the record of who displayed what."""

from audit.models import AuditEntry

# `additional_data` key of an access entry written for a live refresh of a page already displayed
# (htmx re-reading its live part after a notification): kept in the trail, not counted as a display.
REFRESH_KEY = "refresh"


def record_access(*, actor, instance, what: str = "", refresh: bool = False) -> AuditEntry:
    """`actor` displayed `instance` (a case, a company): an ACCESS entry in the access chain.
    `what` names the page or the data shown. One transaction (the chain's append).

    `refresh`: the page's live part was read again in place (an htmx request), not displayed anew.
    The entry is still written — the data did leave the server, and an `HX-Request` header is easy
    to forge — but flagged, and the readings of the trail (`audit.selectors`) do not count it as a
    display."""
    data = {"page": what} if what else {}
    if refresh:
        data[REFRESH_KEY] = True
    return AuditEntry.objects.log_create(
        instance,
        force_log=True,
        action=AuditEntry.Action.ACCESS,
        actor=actor,
        actor_email=actor.email or None,
        additional_data=data or None,
    )


def is_live_refresh(request) -> bool:
    """The request re-reads a part of a page already displayed (htmx), rather than displaying it:
    htmx's history restore (the user came back to the page and htmx had no copy) is a display."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request
