"""The status board's summary of a case's requests, kept on the case row.

The board shows, for every case, its open requests, those past their response deadline and the
nearest response deadline. Reading them from the requests would make the board an aggregate over
every request of every case; they are kept on `Case` instead (`open_requests`, `overdue_requests`,
`next_deadline`), refreshed here in the transaction of every request step (`events.record` calls
`refresh_case`), so the board is one scan of the cases (docs/performance.md)."""

from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from casework.models import Case
from notifications.delivery import board_ring_after_commit
from workflows.models import OPEN_REQUEST_STATUSES, PROVIDER_STATUSES, ServiceRequest


def _count(requests) -> Coalesce:
    counted = requests.order_by().values("case_id").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def refresh_case(case_id: int, site_id: int, case_public_id) -> None:
    """Recompute the case's request summary (one UPDATE) and ring its site's board after commit."""
    requests = ServiceRequest.objects.filter(case_id=OuterRef("pk"), stage__in=OPEN_REQUEST_STATUSES)
    waiting = ServiceRequest.objects.filter(
        case_id=OuterRef("pk"), stage__in=PROVIDER_STATUSES, deadline__isnull=False
    )
    Case.objects.filter(pk=case_id).update(
        open_requests=_count(requests),
        overdue_requests=_count(requests.filter(overdue=True)),
        next_deadline=Subquery(waiting.order_by("deadline").values("deadline")[:1]),
    )
    board_ring_after_commit(site_id, case_public_id)
