"""Who sees and acts on service requests."""

from django.db.models import Q

from casework.rules import NOTHING
from workflows.models import PROVIDER_STATUSES, ServiceRequest


def provider_request_q(roles) -> Q:
    """Requests an organisation of the user currently holds (waiting or taken) or has accepted.
    An organisation that only declined a request, or was passed over at its deadline, loses sight."""
    if not roles.organisation_ids:
        return NOTHING
    return Q(provider_id__in=roles.organisation_ids) & (
        Q(stage__in=PROVIDER_STATUSES) | Q(accepted_at__isnull=False)
    )


def case_visibility_for_providers(user, roles) -> Q:
    """Members of a provider organisation see the case of its request (casework visibility extension)."""
    if not roles.organisation_ids:
        return NOTHING
    return Q(pk__in=ServiceRequest.objects.filter(provider_request_q(roles)).values("case_id"))
