"""The status board's summary of a case's requests, kept on the case row.

The board shows, for every case, its open requests, those past their response deadline and the
nearest response deadline. Reading them from the requests would make the board an aggregate over
every request of every case; they are kept on `Case` instead (`open_requests`, `overdue_requests`,
`next_deadline`, and `red_at` which orders the cards), refreshed here in the transaction of every
request step (`events.record` calls `refresh_case`), so the board is one scan of the cases
(docs/performance.md)."""

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from casework.models import Case, red_at_expression
from notifications.delivery import board_ring_after_commit
from workflows.models import OPEN_REQUEST_STATUSES, PROVIDER_STATUSES, ServiceRequest


def _count(requests) -> Coalesce:
    counted = requests.order_by().values("case_id").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def refresh_cases(cases: QuerySet, activity_at=None) -> int:
    """Recompute the request summary of `cases` from their requests (one UPDATE whatever their
    number). The nearest deadline is that of a request
    waiting for its partner's answer, or of one whose deadline passed (overdue). With
    `activity_at`, the same UPDATE also dates the cases' last activity (as
    `casework.services.record_activity` does)."""
    requests = ServiceRequest.objects.filter(case_id=OuterRef("pk"), stage__in=OPEN_REQUEST_STATUSES)
    deadlines = requests.filter(Q(stage__in=PROVIDER_STATUSES) | Q(overdue=True), deadline__isnull=False)
    nearest = deadlines.order_by("deadline").values("deadline")[:1]
    activity = {} if activity_at is None else {"last_activity_at": activity_at}
    return cases.update(
        open_requests=_count(requests),
        overdue_requests=_count(requests.filter(overdue=True)),
        next_deadline=Subquery(nearest),
        # The SET clauses see the row as it was: red_at reads the new deadline from the subquery,
        # and the new activity from `activity_at`.
        red_at=red_at_expression(last_activity=activity_at, deadline=Subquery(nearest)),
        **activity,
    )


def refresh_case(case_id: int, site_id: int, case_public_id, activity_at=None) -> None:
    """Recompute one case's summary (and, with `activity_at`, date its last activity) and ring its
    site's board after commit."""
    refresh_cases(Case.objects.filter(pk=case_id), activity_at)
    board_ring_after_commit(site_id, case_public_id)
