"""Which partner organisation a request goes to. Pure reads; the flow applies the choice."""

from django.db.models import Count, Q

from casework.models import Organisation, ToolboxService
from workflows.models import HELD_STATUSES

# What weighs on a provider: requests it holds. One waiting for the animators (overdue, unroutable)
# does not count against the provider it was taken from.
LOAD_STATUSES = HELD_STATUSES

DEFAULT_RESPONSE_DAYS = 5


def candidate_providers(request):
    """Active organisations offering an active service of the request's category in the company's
    territory, that have not declined this request, the least loaded first (fewest open
    requests), then by name for a stable order."""
    declined = request.declines.values("organisation_id")
    return (
        Organisation.objects.filter(
            is_active=True,
            services__is_active=True,
            services__category=request.category,
            services__territories=request.case.company.territory_id,
        )
        .exclude(pk__in=declined)
        .distinct()
        .annotate(
            open_requests=Count(
                "provided_requests",
                filter=Q(provided_requests__stage__in=LOAD_STATUSES),
                distinct=True,
            )
        )
        .order_by("open_requests", "name", "pk")
    )


def choose_provider(request, preferred_id: int | None = None) -> Organisation | None:
    """The explicitly requested service's provider first (unless it declined), then the
    organisation a decliner suggested when it offers the category there, else the least loaded."""
    declined_ids = set(request.declines.values_list("organisation_id", flat=True))
    service = request.service
    if (
        service is not None
        and service.is_active
        and service.provider.is_active
        and service.provider_id not in declined_ids
    ):
        return service.provider
    candidates = candidate_providers(request)
    if preferred_id is not None:
        preferred = candidates.filter(pk=preferred_id).first()
        if preferred is not None:
            return preferred
    return candidates.first()


def response_days(request, provider: Organisation) -> int:
    """The response time promised by the provider's service for this request."""
    if request.service is not None and request.service.provider_id == provider.pk:
        return request.service.response_time_days
    days = (
        ToolboxService.objects.filter(
            provider=provider,
            is_active=True,
            category=request.category,
            territories=request.case.company.territory_id,
        )
        .order_by("response_time_days")
        .values_list("response_time_days", flat=True)
        .first()
    )
    return days or DEFAULT_RESPONSE_DAYS
