"""The weekly review meeting: the site's reviews, opening this week's (its agenda frozen), recording
what was said per item, closing it (minutes archived and e-mailed), and marking an action item
done. Thin views over cockpit.review (reads) and cockpit.services (writes); the site comes from
cockpit.selectors.board_site: a 404 for whoever does not animate it."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from casework.exceptions import BusinessRuleError
from cockpit import review, selectors, services
from cockpit.forms import ReviewEntryForm


@require_GET
def review_list(request, slug):
    site = selectors.board_site(request.user, slug)
    reviews = list(review.reviews_of(site)[:60])
    # The review under way (at most one per site): continued rather than a new one opened.
    current = next((weekly for weekly in reviews if weekly.is_open), None)
    context = {"site": site, "reviews": reviews, "current": current}
    return render(request, "cockpit/review_list.html", context)


@require_POST
def review_open(request, slug):
    site = selectors.board_site(request.user, slug)
    try:
        weekly = services.review_open(actor=request.user, site=site)
    except BusinessRuleError as error:
        messages.error(request, error.message)
        return redirect("review_list", slug=slug)
    return redirect("review_detail", slug=slug, pk=weekly.pk)


@require_GET
def review_detail(request, slug, pk):
    site = selectors.board_site(request.user, slug)
    return _render_review(request, site, review.review_get(site, pk))


def _render_review(request, site, weekly, *, bound=None, status=200):
    """The review page; `bound` is the (item id, form) refused, shown again with its errors."""
    items = review.review_items(weekly)
    owners = review.action_owners(weekly, items) if weekly.is_open else {}
    for item in items:
        if bound and bound[0] == item.pk:
            item.form = bound[1]
        elif weekly.is_open:
            item.form = ReviewEntryForm(owners=owners[item.pk], prefix=f"item{item.pk}")
    context = {
        "site": site,
        "review": weekly,
        "items": items,
        "open_entries": review.open_action_ids(items) if weekly.is_open else set(),
        "schedule": review.schedule_of(site),
        "participants": weekly.participants.all() if not weekly.is_open else review.participants_of(site.pk),
    }
    return render(request, "cockpit/review_detail.html", context, status=status)


@require_POST
def review_entry_add(request, slug, pk, item):
    site = selectors.board_site(request.user, slug)
    weekly = review.review_get(site, pk)
    agenda_item = review.item_get(weekly, item)
    if not weekly.is_open:
        messages.error(request, _("This review is closed: nothing can be recorded on it any more."))
        return redirect("review_detail", slug=slug, pk=weekly.pk)
    owners = review.action_owners(weekly, [agenda_item])[agenda_item.pk]
    form = ReviewEntryForm(request.POST, owners=owners, prefix=f"item{agenda_item.pk}")
    if form.is_valid():
        try:
            services.review_entry_add(actor=request.user, item=agenda_item, **form.entry_fields())
        except BusinessRuleError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, _("Recorded."))
        url = reverse("review_detail", kwargs={"slug": slug, "pk": weekly.pk})
        return redirect(f"{url}#item-{agenda_item.pk}")
    messages.error(request, _("Nothing was recorded: correct the form of this item."))
    return _render_review(request, site, weekly, bound=(agenda_item.pk, form))


@require_POST
def review_close(request, slug, pk):
    site = selectors.board_site(request.user, slug)
    weekly = review.review_get(site, pk)
    try:
        services.review_close(actor=request.user, weekly=weekly)
    except BusinessRuleError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("The review is closed; its minutes are e-mailed to the participants."))
    return redirect("review_detail", slug=slug, pk=weekly.pk)


@require_POST
def action_done(request, pk):
    """Mark an action item done, from the owner's task list or from the review page."""
    entry = review.action_get(request.user, pk)
    try:
        services.action_done(actor=request.user, entry=entry)
    except BusinessRuleError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("The action item is marked done."))
    # Back to the review page the button was on (one of the user's sites), else the task list.
    weekly = review.review_of_user(request.user, request.POST.get("review"))
    if weekly is not None:
        return redirect("review_detail", slug=weekly.site.slug, pk=weekly.pk)
    return redirect("task_list")
