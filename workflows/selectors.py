"""User-scoped reads of service requests and tasks. A request is visible exactly when its case
is (casework's confidentiality rule, extended by workflows.rules for provider organisations)."""

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.shortcuts import get_object_or_404
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from casework import rules
from casework.models import Case, ToolboxService
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.models import ServiceRequest

TASK_RELATED = (
    "process__servicerequest__case__company",
    "process__servicerequest__case__site",
    "process__servicerequest__provider",
    "owner",
)


def requests_visible_to(user) -> QuerySet:
    return ServiceRequest.objects.filter(case__in=Case.objects.visible_to(user).values("pk"))


def request_get(*, user, public_id) -> ServiceRequest:
    return get_object_or_404(
        requests_visible_to(user).select_related(
            "case__company", "case__site", "case__referent", "need", "service", "provider", "accepted_by"
        ),
        public_id=public_id,
    )


def request_detail(request: ServiceRequest) -> dict:
    return {
        "events": list(request.events.select_related("actor", "organisation")),
        "declines": list(request.declines.select_related("organisation", "agent", "suggested_organisation")),
        "interventions": list(request.interventions.select_related("owner", "owner_organisation")),
        "open_tasks": list(
            Task.objects.filter(
                process_id=request.pk, status__in=[STATUS.NEW, STATUS.ASSIGNED]
            ).select_related("owner")
        ),
    }


def case_requests(case: Case) -> list[ServiceRequest]:
    return list(case.requests.select_related("provider", "need").order_by("-opened_at"))


def _queue_q(user) -> Q:
    roles = rules.user_roles(user)
    queue = Q(pk__in=[])
    if roles.organisation_ids:
        queue |= Q(flow_task=FLOW.review, process__servicerequest__provider_id__in=roles.organisation_ids)
    if roles.animated_site_ids:
        queue |= Q(
            flow_task=FLOW.dispatch, process__servicerequest__case__site_id__in=roles.animated_site_ids
        )
    return queue


def _mine_q(user) -> Q:
    """Tasks assigned to me; a delivery to validate belongs to the case's current referent, even
    when it was assigned to the referent before a handover."""
    return (Q(owner=user) & ~Q(flow_task=FLOW.validate)) | Q(
        flow_task=FLOW.validate, process__servicerequest__case__referent=user
    )


def _human_tasks(user, *filters, **lookups) -> QuerySet:
    """Human tasks, each with `case_visible`: the confidentiality rule asked now of its case. A
    task list names a company, its site and the partner only when it is true; otherwise the row
    shows the step alone (a task still assigned to me after I left the organisation, a step of my history on
    a case I no longer see). One correlated EXISTS per row of the page: the page's query count does
    not grow with the lists."""
    visible = Case.objects.visible_to(user).filter(pk=OuterRef("process__servicerequest__case_id"))
    return (
        Task.objects.filter(*filters, flow_task_type="HUMAN", **lookups)
        .annotate(case_visible=Exists(visible))
        .select_related(*TASK_RELATED)
    )


def my_tasks(user) -> QuerySet:
    """Tasks assigned to me and still to do."""
    return _human_tasks(user, _mine_q(user), status=STATUS.ASSIGNED).order_by("-created", "-pk")


def queue(user) -> QuerySet:
    """Unclaimed tasks of my organisations (and of the sites I animate)."""
    return _human_tasks(user, _queue_q(user), status=STATUS.NEW).order_by("created", "pk")


def history(user) -> QuerySet:
    """What I completed. A step stays in my history after I lost sight of its case (I declined the
    request, handed the case over, left the organisation...), but without what it names then."""
    return _human_tasks(user, owner=user, status=STATUS.DONE).order_by("-finished", "-pk")


def task_counts(user) -> dict:
    """The header counters, in one query."""
    if not getattr(user, "is_authenticated", False):
        return {"mine": 0, "queue": 0}
    counts = Task.objects.filter(flow_task_type="HUMAN").aggregate(
        mine=Count("pk", filter=Q(_mine_q(user), status=STATUS.ASSIGNED)),
        queue=Count("pk", filter=Q(_queue_q(user), status=STATUS.NEW)),
    )
    return counts


def services_for_case(case: Case) -> QuerySet:
    return (
        ToolboxService.objects.filter(
            is_active=True, provider__is_active=True, territories=case.company.territory_id
        )
        .select_related("provider")
        .order_by("category", "name")
    )


def open_task(request: ServiceRequest, *nodes) -> Task | None:
    """The task of one of these nodes still to do on the request (at most one at a time)."""
    return (
        Task.objects.filter(
            process_id=request.pk, flow_task__in=nodes, status__in=[STATUS.NEW, STATUS.ASSIGNED]
        )
        .order_by("-pk")
        .first()
    )


# Other apps add what else waits for a user on « My tasks » (cockpit: the action items of the
# weekly reviews), as `key -> f(user) -> list`, without workflows importing them.
_WAITING_SOURCES = {}


def register_waiting_source(key: str, source) -> None:
    _WAITING_SOURCES[key] = source


def decisions_waiting(user) -> dict:
    """Decisions that are not viewflow tasks but wait for this user: enrolment proposals and
    escalations of the sites they animate, handovers addressed to them; and what the registered
    sources add."""
    from casework.models import Handover
    from workflows.models import Escalation

    site_ids = rules.user_roles(user).animated_site_ids
    return {
        "proposals": list(
            Case.objects.filter(site_id__in=site_ids, state="proposed").select_related(
                "company", "site", "referent"
            )[:50]
        )
        if site_ids
        else [],
        "escalations": list(
            Escalation.objects.filter(case__site_id__in=site_ids, decided_at__isnull=True).select_related(
                "case__company", "raised_by"
            )[:50]
        )
        if site_ids
        else [],
        "handovers": list(
            Handover.objects.filter(to_user=user, status="proposed").select_related(
                "case__company", "proposed_by"
            )[:50]
        ),
        **{key: source(user) for key, source in _WAITING_SOURCES.items()},
    }
