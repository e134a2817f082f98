"""The one entry point through which services tell users that something happened.

`notify()` writes one row per recipient inside the caller's transaction. Recipients are given by
the calling service, computed on the server from current rights, never taken from client input.
After commit, the recipients' sockets are rung (notifications.delivery)."""

from django.db import connections, router
from django.db.models import sql
from django.utils import timezone, translation

from notifications import delivery, outbox, selectors
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
    created = _create(rows)
    outbox.queue_immediate([row for row in created if channels[row.recipient_id] == Channel.IMMEDIATE])
    delivery.ring_after_commit([_ring(row, case, service_request) for row in created])
    return created


def _create(rows: list[Notification]) -> list[Notification]:
    """`bulk_create(rows)` in one INSERT that also returns, for each row, the id of its recipient's
    previous notification (`row.previous_id`, None for a first one), read by the same statement: the
    ring carries it, so that a socket that sent exactly that one may send the new one without
    reading the database (notifications.consumers). The recipients of one call are distinct, so no
    row of the INSERT is the previous one of another; rows written earlier in the transaction are
    seen. The statement is the ORM's own INSERT … RETURNING id with one more column; if Django ever
    compiles it otherwise, it fails loudly rather than guess."""
    if not rows:
        return []
    using = router.db_for_write(Notification)
    connection = connections[using]
    meta = Notification._meta
    for row in rows:
        row._prepare_related_fields_for_save(operation_name="bulk_create")
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    query = sql.InsertQuery(Notification)
    query.insert_values(fields, rows)
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = [meta.pk]
    [(statement, params)] = compiler.as_sql()
    returning, _ = connection.ops.return_insert_columns([meta.pk])
    if not connection.features.can_return_rows_from_bulk_insert or not statement.endswith(returning):
        raise RuntimeError(f"notifications: the INSERT does not end with {returning!r}: {statement}")
    quote = connection.ops.quote_name
    table, pk, recipient = quote(meta.db_table), quote(meta.pk.column), quote("recipient_id")
    previous = (
        f"(SELECT MAX(earlier.{pk}) FROM {table} earlier"
        f" WHERE earlier.{recipient} = {table}.{recipient} AND earlier.{pk} < {table}.{pk})"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"{statement}, {previous}", params)
        returned = cursor.fetchall()
    for row, (pk_value, previous_id) in zip(rows, returned, strict=True):
        row.pk, row.previous_id = pk_value, previous_id
        row._state.adding, row._state.db = False, using
    return rows


def _ring(row: Notification, case, service_request) -> dict:
    """What the recipient's sockets are rung with: the message as a socket would read it from the
    database (`selectors.message_of`), the previous id, and the case's site, referent and
    organisation as this transaction sees them (a socket decides from them and its fresh roles
    whether the user sees the case, or reads the database)."""
    message = selectors.message_of(
        row,
        case_public_id=case.public_id if case is not None else None,
        request_public_id=service_request.public_id if service_request is not None else None,
    )
    facts = None
    if case is not None:
        facts = {
            "id": case.pk,
            "site": case.site_id,
            "referent": case.referent_id,
            "organisation": case.referent_organisation_id,
        }
    return {
        "recipient": row.recipient_id,
        "id": row.pk,
        "previous": row.previous_id,
        "case": facts,
        "message": message,
    }


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
