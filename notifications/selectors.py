"""Reads of a user's notifications. Only rows addressed to the user, and only about cases the
user may still see (losing access to a case stops its notifications, also those already written)."""

from django.db.models import Q, QuerySet
from django.urls import reverse

from casework.models import Case
from notifications.models import Notification


def for_user(user) -> QuerySet:
    visible_cases = Case.objects.visible_to(user).values("pk")
    return Notification.objects.filter(recipient_id=user.pk).filter(
        Q(case__isnull=True) | Q(case__in=visible_cases)
    )


def unread_count(user) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return for_user(user).filter(read_at__isnull=True).count()


def after(user, last_id: int, limit: int = 200) -> list[Notification]:
    """What a socket missed: the user's rows after `last_id`, oldest first."""
    return list(
        for_user(user).filter(pk__gt=last_id).select_related("service_request", "case").order_by("pk")[:limit]
    )


def target_url(notification: Notification) -> str:
    if notification.service_request_id:
        return reverse("request_detail", kwargs={"public_id": notification.service_request.public_id})
    if notification.case_id:
        url = reverse("case_detail", kwargs={"public_id": notification.case.public_id})
        if notification.event_type in ("case_mention", "case_comment"):
            url += "#commentaires"
        return url
    return reverse("notification_list")


def as_message(notification: Notification) -> dict:
    return {
        "type": "notification",
        "id": notification.pk,
        "event": notification.event_type,
        "text": notification.text,
        "url": target_url(notification),
        "created": notification.created_at.isoformat(),
        "read": notification.read_at is not None,
    }
