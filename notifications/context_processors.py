from django.db.models import Count, Max, Q
from django.utils.functional import SimpleLazyObject

from notifications import selectors


def inbox(request):
    """The bell of the header: unread count and the last notification id the page knows (the
    socket replays everything after it). One query, only if a template shows it."""

    def compute():
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return {"unread": 0, "last_id": 0}
        figures = selectors.for_user(user).aggregate(
            unread=Count("pk", filter=Q(read_at__isnull=True)), last_id=Max("pk")
        )
        return {"unread": figures["unread"], "last_id": figures["last_id"] or 0}

    return {"inbox": SimpleLazyObject(compute)}
