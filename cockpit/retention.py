"""The weekly reviews' part of the anonymisation of a closed case (casework.retention): what the
animators wrote about the company is wiped, from its entries, from the reasons frozen on its items
and from the archived minutes (rebuilt from the wiped rows, the other companies' items unchanged).
Kinds, owners, due dates and the number of items stay countable."""

from django.db.models import QuerySet

from casework.retention import wipe_text
from cockpit.models import ReviewEntry, ReviewItem, WeeklyReview


def wipe_case(case, marker) -> dict:
    """Wipe the free text of the review rows of `case` (updates without auditlog entries) and
    return the rows whose audit entries must be redacted."""
    entries = ReviewEntry.objects.filter(item__case=case)
    wipe_text(entries, "text")
    items = list(ReviewItem.objects.filter(case=case))
    for item in items:
        item.reasons = [{**reason, "text": marker} for reason in item.reasons]
    ReviewItem.objects.bulk_update(items, ["reasons"])
    reviews = WeeklyReview.objects.filter(items__case=case).distinct()
    _rebuild_minutes(reviews.filter(status=WeeklyReview.Status.CLOSED))
    return {
        ReviewEntry: list(entries.values_list("pk", flat=True)),
        ReviewItem: [item.pk for item in items],
        WeeklyReview: list(reviews.values_list("pk", flat=True)),
    }


def _rebuild_minutes(reviews: QuerySet) -> None:
    from cockpit.services import render_minutes

    for weekly in reviews.select_related("site", "closed_by"):
        _subject, text, _html = render_minutes(weekly, list(weekly.participants.all()))
        WeeklyReview.objects.filter(pk=weekly.pk).update(minutes=text)
