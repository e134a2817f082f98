"""The animators' cockpit: status boards and the weekly review's agenda. Thin views over
cockpit.selectors and cockpit.review."""

from datetime import timedelta

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from cockpit import review, selectors
from cockpit import services as review_services
from cockpit.forms import BoardFilterForm, ReviewScheduleForm


@require_GET
def board_region(request):
    """Every board the user may open on one page (several sites, or administrators); an animator of
    a single site goes straight to its board. Nobody else has boards: 404."""
    sites = selectors.board_sites(request.user)
    if not sites:
        raise Http404
    if len(sites) == 1:
        return redirect("board", slug=sites[0].slug)
    return _render_board(request, sites, regional=True)


@require_GET
def board(request, slug):
    return _render_board(request, [selectors.board_site(request.user, slug)], regional=False)


def _render_board(request, sites, *, regional):
    form = BoardFilterForm(request.GET or None)
    filters = {}
    if form.is_valid():
        data = form.cleaned_data
        filters = {
            "referent_id": data["referent"],
            "category": data["category"],
            "overdue_only": data["overdue"],
        }
    elif form.is_bound:
        messages.error(request, _("The filters are not valid; every case is shown."))
    board = selectors.board(request.user, sites, **filters)
    context = {
        "board": board,
        "form": form,
        "filtered": bool(filters and any(filters.values())),
        "regional": regional,
        "site": None if regional else sites[0],
    }
    partial = request.htmx and not request.htmx.history_restore_request
    template = "cockpit/partials/board.html" if partial else "cockpit/board.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_GET
def review_agenda(request, slug):
    """The agenda of the site's next weekly review, generated from what happened over the last 7
    days and what needs the animators now, with when and where the review is held."""
    site = selectors.board_site(request.user, slug)
    return _render_agenda(request, site, ReviewScheduleForm(instance=review.schedule_of(site)))


def _render_agenda(request, site, form):
    now = timezone.now()
    since = now - timedelta(days=review.DEFAULT_WINDOW_DAYS)
    schedule = form.instance if form.instance.pk else None
    context = {
        "site": site,
        "items": review.agenda(request.user, site, since=since, until=now),
        "since": since,
        "until": now,
        "schedule": schedule,
        "next_start": schedule.next_start(now) if schedule else None,
        "form": form,
    }
    return render(request, "cockpit/review_agenda.html", context)


@require_POST
def review_schedule(request, slug):
    """Save when and where the site's weekly review is held (from the agenda page)."""
    site = selectors.board_site(request.user, slug)
    form = ReviewScheduleForm(request.POST, instance=review.schedule_of(site))
    if form.is_valid():
        review_services.review_schedule_save(actor=request.user, site=site, **form.cleaned_data)
        messages.success(request, _("The weekly review's schedule is saved."))
        return redirect("review_agenda", slug=slug)
    return _render_agenda(request, site, form)
