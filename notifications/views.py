import re

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications import selectors, services
from notifications.models import Channel, EventType, default_channel


@require_GET
def notification_list(request):
    unread_only = request.GET.get("filtre") == "non-lues"
    notifications = selectors.for_user(request.user).select_related("case", "service_request", "actor")
    if unread_only:
        notifications = notifications.filter(read_at__isnull=True)
    page = Paginator(notifications.order_by("-pk"), 30).get_page(request.GET.get("page"))
    return render(
        request,
        "notifications/list.html",
        {
            "page": page,
            "unread_only": unread_only,
            "items": [(n, selectors.target_url(n)) for n in page.object_list],
            "query_string": "filtre=non-lues" if unread_only else "",
        },
    )


@require_POST
def notification_mark_read(request):
    # ASCII digits only: str.isdigit() also accepts "²" or "①", which int() refuses (a 500).
    ids = [int(value) for value in request.POST.getlist("id") if re.fullmatch(r"[0-9]{1,18}", value)]
    if request.POST.get("all") == "1":
        count = services.mark_all_read(actor=request.user)
    else:
        count = services.mark_read(actor=request.user, ids=ids)
    messages.success(request, _("%(count)s notification(s) marked as read.") % {"count": count})
    return redirect("notification_list")


@require_http_methods(["GET", "POST"])
def notification_preferences(request):
    current = dict(request.user.notification_preferences.values_list("event_type", "channel"))
    rows = [
        {"event": value, "label": label, "channel": current.get(value, default_channel(value))}
        for value, label in EventType.choices
    ]
    if request.method == "POST":
        choices = {row["event"]: request.POST.get(row["event"], row["channel"]) for row in rows}
        try:
            services.preferences_save(actor=request.user, choices=choices)
        except ValueError:
            messages.error(request, _("One of the choices is not valid; nothing was changed."))
        else:
            messages.success(request, _("Your notification preferences are saved."))
            return redirect("notification_preferences")
    return render(request, "notifications/preferences.html", {"rows": rows, "channels": Channel.choices})
