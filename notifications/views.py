from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from notifications import selectors, services


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
    ids = [int(value) for value in request.POST.getlist("id") if value.isdigit()]
    if request.POST.get("all") == "1":
        count = services.mark_all_read(actor=request.user)
    else:
        count = services.mark_read(actor=request.user, ids=ids)
    messages.success(request, _("%(count)s notification(s) marked as read.") % {"count": count})
    return redirect("notification_list")
