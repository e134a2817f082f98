"""The service requests' part of the anonymisation of a closed case (casework.retention): their
free text is wiped, their statuses, categories, dates, providers and results stay."""

from casework.retention import wipe_text
from workflows.models import Escalation, RequestDecline, RequestEvent, ServiceRequest


def wipe_case(case, marker) -> dict:
    """Wipe the free text of the requests and escalations of `case` (QuerySet.update: no auditlog
    entry copies the text again) and return the rows whose audit entries must be redacted."""
    requests = ServiceRequest.objects.filter(case=case)
    declines = RequestDecline.objects.filter(request__case=case)
    escalations = Escalation.objects.filter(case=case)
    wipe_text(requests, "brief", "result_text", "cancel_reason")
    wipe_text(declines, "reason_text")
    wipe_text(RequestEvent.objects.filter(request__case=case), "text")
    wipe_text(escalations, "text", "decision_text")
    return {
        ServiceRequest: list(requests.values_list("pk", flat=True)),
        RequestDecline: list(declines.values_list("pk", flat=True)),
        Escalation: list(escalations.values_list("pk", flat=True)),
    }
