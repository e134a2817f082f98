"""Reads of a user's notifications. Only rows addressed to the user, and only about cases the
user may still see (losing access to a case stops its notifications, also those already written)."""

from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.urls import reverse

from casework.models import Case
from notifications.models import Notification
from workflows.compiled import CompiledRead

# Rows read at most per ring (the rest at the next ring or hello).
AFTER_LIMIT = 200


def for_user(user) -> QuerySet:
    # EXISTS on the row's own case, not `case IN (visible cases)`: under the OR, PostgreSQL read the
    # ids of every case the user sees (all of them for an administrator) at every page's bell.
    visible_case = Case.objects.visible_to(user).filter(pk=OuterRef("case_id"))
    return Notification.objects.filter(recipient_id=user.pk).filter(
        Q(case__isnull=True) | Exists(visible_case)
    )


def unread_count(user) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return for_user(user).filter(read_at__isnull=True).count()


def _rows_after(user, last_id):
    return (
        Notification.objects.filter(recipient_id=user, pk__gt=last_id)
        .order_by("pk")
        .values("id", "event_type", "text", "created_at", "read_at", "case_id", "case__public_id")
        .annotate(request_public_id=F("service_request__public_id"))[:AFTER_LIMIT]
    )


# Compiled once per database (workflows.compiled): building and compiling this queryset took longer
# than running it, at every ring of every socket.
_ROWS_AFTER = CompiledRead(_rows_after, "user", "last_id")


def after(user, last_id: int) -> tuple[list[dict], int]:
    """What a socket missed: the messages of the user's rows after `last_id`, oldest first (at most
    AFTER_LIMIT), and the last id read (rows about a case the user lost are read and skipped, never
    sent). Light on purpose: it runs at every ring of every socket."""
    rows = _ROWS_AFTER(user=user.pk, last_id=last_id)
    case_ids = {row["case_id"] for row in rows if row["case_id"]}
    visible = (
        set(Case.objects.visible_to(user).filter(pk__in=case_ids).values_list("pk", flat=True))
        if case_ids
        else set()
    )
    messages = [_message(row) for row in rows if not row["case_id"] or row["case_id"] in visible]
    return messages, (rows[-1]["id"] if rows else last_id)


def _url(event_type, case_public_id, request_public_id) -> str:
    if event_type == "review_action":  # the owner's task list, where the action item waits
        return reverse("task_list")
    if request_public_id:
        return reverse("request_detail", kwargs={"public_id": request_public_id})
    if case_public_id:
        url = reverse("case_detail", kwargs={"public_id": case_public_id})
        if event_type in ("case_mention", "case_comment"):
            url += "#commentaires"
        return url
    return reverse("notification_list")


def _message(row: dict) -> dict:
    return {
        "type": "notification",
        "id": row["id"],
        "event": row["event_type"],
        "text": row["text"],
        "url": _url(row["event_type"], row["case__public_id"], row["request_public_id"]),
        "created": row["created_at"].isoformat(),
        "read": row["read_at"] is not None,
    }


def message_of(notification: Notification, *, case_public_id, request_public_id) -> dict:
    """The socket's message of a row just written (the same as `after` reads from the database)."""
    return _message(
        {
            "id": notification.pk,
            "event_type": notification.event_type,
            "text": notification.text,
            "created_at": notification.created_at,
            "read_at": notification.read_at,
            "case__public_id": case_public_id,
            "request_public_id": request_public_id,
        }
    )


def target_url(notification: Notification) -> str:
    return _url(
        notification.event_type,
        notification.case.public_id if notification.case_id else None,
        notification.service_request.public_id if notification.service_request_id else None,
    )
