"""Reads of the audit trail."""

from django.contrib.contenttypes.models import ContentType

from audit.models import AuditEntry


def accesses_of(instance, limit: int = 30) -> list[AuditEntry]:
    """The latest displays of `instance` (a case), most recent first, with who displayed it."""
    return list(
        AuditEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(instance),
            object_pk=str(instance.pk),
            action=AuditEntry.Action.ACCESS,
        )
        .select_related("actor")
        .order_by("-timestamp", "-pk")[:limit]
    )
