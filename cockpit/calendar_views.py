"""The personal calendar feed: the page that creates or revokes its secret URL, and the feed."""

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from cockpit import calendar


@require_http_methods(["GET", "POST"])
def calendar_settings(request):
    """« Mon agenda » : create (or replace) the secret URL, shown once, or revoke it."""
    context = {"has_feed": calendar.has_feed(request.user), "feed_url": None}
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "create":
            token = calendar.feed_create(actor=request.user)
            context.update(
                has_feed=True,
                feed_url=request.build_absolute_uri(reverse("calendar_feed", kwargs={"token": token})),
            )
            return render(request, "cockpit/calendar.html", context)
        if action == "revoke":
            if calendar.feed_revoke(actor=request.user):
                messages.success(request, _("Your calendar link is revoked: it no longer works."))
            return redirect("calendar_settings")
        messages.error(request, _("Unknown action."))
        return redirect("calendar_settings")
    return render(request, "cockpit/calendar.html", context)


@login_not_required  # calendar clients have no session: the secret token is the key
@require_GET
def calendar_feed(request, token):
    user = calendar.feed_owner(token)
    if user is None:
        raise Http404
    response = HttpResponse(calendar.ics(user), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="territoires-de-solutions.ics"'
    response["Cache-Control"] = "private, no-store"
    return response
