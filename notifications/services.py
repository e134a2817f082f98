"""The one entry point through which services tell users that something happened.

`notify()` writes one row per recipient inside the caller's transaction. Recipients are given by
the calling service, computed on the server from current rights, never taken from client input.
After commit, the recipients' sockets are rung (notifications.delivery)."""

from django.utils import timezone, translation

from notifications import delivery, outbox
from notifications.models import Channel, Notification


def notify(
    *, event_type: str, recipients, message, params=None, actor=None, case=None, service_request=None
) -> list[Notification]:
    """Record `message` (a gettext_lazy string with %(name)s placeholders filled from `params`),
    rendered in French, the users' language, for each distinct active recipient but the actor,
    according to their preference for this event type: off (nothing), in the application, with an
    immediate e-mail (queued in the outbox, same transaction), or in the daily digest."""
    with translation.override("fr"):
        rendered = str(message) % (params or {})
    seen, users = set(), []
    for user in recipients:
        if (
            user is None
            or user.pk in seen
            or not user.is_active
            or (actor is not None and user.pk == actor.pk)
        ):
            continue
        seen.add(user.pk)
        users.append(user)
    channels = outbox.channels_for(users, event_type)
    rows = [
        Notification(
            recipient=user,
            event_type=event_type,
            actor=actor,
            case=case,
            service_request=service_request,
            text=rendered,
        )
        for user in users
        if channels[user.pk] != Channel.OFF
    ]
    created = Notification.objects.bulk_create(rows)
    outbox.queue_immediate([row for row in created if channels[row.recipient_id] == Channel.IMMEDIATE])
    delivery.ring_after_commit(row.recipient_id for row in created)
    return created


def mark_read(*, actor, ids) -> int:
    """Mark some of the actor's own notifications as read (others' ids are ignored)."""
    return Notification.objects.filter(recipient=actor, pk__in=list(ids)[:500], read_at__isnull=True).update(
        read_at=timezone.now()
    )


def mark_all_read(*, actor) -> int:
    return Notification.objects.filter(recipient=actor, read_at__isnull=True).update(read_at=timezone.now())


def preferences_save(*, actor, choices: dict) -> int:
    """Save the actor's channel per event type; unknown event types or channels are refused."""
    from django.db import transaction

    from notifications.models import EventType, NotificationPreference

    if any(
        event not in EventType.values or channel not in Channel.values for event, channel in choices.items()
    ):
        raise ValueError("unknown event type or channel")
    outbox.forget_channels(actor)
    with transaction.atomic():
        for event, channel in choices.items():
            NotificationPreference.objects.update_or_create(
                user=actor, event_type=event, defaults={"channel": channel}
            )
    return len(choices)
