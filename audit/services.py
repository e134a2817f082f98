"""Writes of the audit trail that are not model changes: the record of who displayed what."""

from audit.models import AuditEntry


def record_access(*, actor, instance, what: str = "") -> AuditEntry:
    """`actor` displayed `instance` (a case, a company): an ACCESS entry in the access chain.
    `what` names the page or the data shown. One transaction (the chain's append)."""
    return AuditEntry.objects.log_create(
        instance,
        force_log=True,
        action=AuditEntry.Action.ACCESS,
        actor=actor,
        actor_email=actor.email or None,
        additional_data={"page": what} if what else None,
    )
