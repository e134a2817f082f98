"""The one entry point through which services tell users that something happened.

`notify()` writes one row per recipient inside the caller's transaction. Recipients are given by
the calling service, computed on the server from current rights, never taken from client input.
The live delivery after commit is added by the notifications issue."""

from django.utils import timezone, translation

from notifications import delivery
from notifications.models import Notification


def notify(
    *, event_type: str, recipients, message, params=None, actor=None, case=None, service_request=None
) -> list[Notification]:
    """Record `message` (a gettext_lazy string with %(name)s placeholders filled from `params`),
    rendered in French, the users' language, for each distinct active recipient but the actor."""
    with translation.override("fr"):
        rendered = str(message) % (params or {})
    seen, rows = set(), []
    for user in recipients:
        if (
            user is None
            or user.pk in seen
            or (actor is not None and user.pk == actor.pk)
            or not user.is_active
        ):
            continue
        seen.add(user.pk)
        rows.append(
            Notification(
                recipient=user,
                event_type=event_type,
                actor=actor,
                case=case,
                service_request=service_request,
                text=rendered,
            )
        )
    created = Notification.objects.bulk_create(rows)
    delivery.ring_after_commit(row.recipient_id for row in created)
    return created


def mark_read(*, actor, ids) -> int:
    """Mark some of the actor's own notifications as read (others' ids are ignored)."""
    return Notification.objects.filter(recipient=actor, pk__in=list(ids)[:500], read_at__isnull=True).update(
        read_at=timezone.now()
    )


def mark_all_read(*, actor) -> int:
    return Notification.objects.filter(recipient=actor, read_at__isnull=True).update(read_at=timezone.now())
