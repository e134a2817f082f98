"""workflows' part of the case timeline (`casework.timeline`): each step of the case's requests
and the escalations with their decisions. Registered by `WorkflowsConfig.ready()`, so casework
imports nothing from here."""

from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from casework.timeline import Batch, Before, TimelineItem, actor_name, batch, is_system
from workflows.models import Escalation, EventKind, RequestEvent

# What each step of a request says; %(category)s is the request's category, %(organisation)s the
# partner organisation of the step (when the step names none, the step's own label is used).
STEP_TEXTS = {
    EventKind.OPENED: _("Request “%(category)s” opened"),
    EventKind.ROUTED: _("Request “%(category)s” routed to %(organisation)s"),
    EventKind.UNROUTABLE: _("Request “%(category)s”: no partner left, sent to the animators"),
    EventKind.CLAIMED: _("Request “%(category)s” taken by %(organisation)s"),
    EventKind.RELEASED: _("Request “%(category)s” released by %(organisation)s"),
    EventKind.ACCEPTED: _("Request “%(category)s” accepted by %(organisation)s"),
    EventKind.DECLINED: _("Request “%(category)s” declined by %(organisation)s"),
    EventKind.OVERDUE: _("Request “%(category)s”: response deadline of %(organisation)s passed"),
    EventKind.ASSIGNED: _("Request “%(category)s” given to %(organisation)s by the animators"),
    EventKind.INTERVENTION_PLANNED: _("Intervention planned (request “%(category)s”)"),
    EventKind.INTERVENTION_DONE: _("Intervention done (request “%(category)s”)"),
    EventKind.INTERVENTION_CANCELLED: _("Intervention cancelled (request “%(category)s”)"),
    EventKind.DELIVERED: _("Request “%(category)s” delivered by %(organisation)s"),
    EventKind.VALIDATED: _("Request “%(category)s” validated"),
    EventKind.SENT_BACK: _("Request “%(category)s” sent back for more work"),
    EventKind.CANCELLED: _("Request “%(category)s” cancelled"),
}
INTERVENTION_STEPS = (
    EventKind.INTERVENTION_PLANNED,
    EventKind.INTERVENTION_DONE,
    EventKind.INTERVENTION_CANCELLED,
)


NAMING_AN_ORGANISATION = (
    EventKind.ROUTED,
    EventKind.CLAIMED,
    EventKind.RELEASED,
    EventKind.ACCEPTED,
    EventKind.DECLINED,
    EventKind.OVERDUE,
    EventKind.ASSIGNED,
    EventKind.DELIVERED,
)


def _step_text(event) -> str:
    template = STEP_TEXTS.get(event.kind)
    category = event.request.get_category_display()
    if template is None or (event.kind in NAMING_AN_ORGANISATION and event.organisation is None):
        return f"{event.get_kind_display()} — {category}"
    return str(template) % {
        "category": category,
        "organisation": event.organisation.name if event.organisation else "",
    }


def request_steps(case, viewer, limit: int, before: Before) -> Batch:
    """Every step of every request of the case (the `RequestEvent` rows, already in French for their
    details), with a link to the request: one query."""
    rows = (
        RequestEvent.objects.filter(before.q("at"), request__case=case)
        .select_related("actor", "organisation", "request")
        .order_by("-at", "-id")[:limit]
    )
    urls = {}

    def make(event):
        request = event.request
        if request.pk not in urls:
            urls[request.pk] = reverse("request_detail", args=[request.public_id])
        return [
            TimelineItem(
                at=event.at,
                kind="intervention" if event.kind in INTERVENTION_STEPS else "request",
                text=_step_text(event),
                actor=actor_name(event.actor),
                automatic=is_system(event.actor),
                organisation=event.organisation.name if event.organisation else "",
                details=event.text,
                url=urls[request.pk],
                order=event.pk,
            )
        ]

    return batch(rows, limit, "at", make)


def escalations_raised(case, viewer, limit: int, before: Before) -> Batch:
    """Escalations to the animators: one query."""
    rows = (
        Escalation.objects.filter(before.q("raised_at"), case=case)
        .select_related("raised_by")
        .order_by("-raised_at", "-id")[:limit]
    )
    return batch(
        rows,
        limit,
        "raised_at",
        lambda escalation: [
            TimelineItem(
                at=escalation.raised_at,
                kind="decision",
                text=gettext("Case escalated to the animators"),
                actor=actor_name(escalation.raised_by),
                automatic=is_system(escalation.raised_by),
                details=escalation.text,
                order=escalation.pk,
            )
        ],
    )


def escalation_decisions(case, viewer, limit: int, before: Before) -> Batch:
    """The animators' decisions on escalations (with a link to the request a « mobilise » decision
    opened): one query."""
    rows = (
        Escalation.objects.filter(before.q("decided_at"), case=case, decided_at__isnull=False)
        .select_related("decided_by", "service_request")
        .order_by("-decided_at", "-id")[:limit]
    )

    def make(escalation):
        opened = escalation.service_request
        return [
            TimelineItem(
                at=escalation.decided_at,
                kind="decision",
                text=gettext("Animators' decision on the escalation: %(decision)s")
                % {"decision": escalation.get_decision_display()},
                actor=actor_name(escalation.decided_by),
                automatic=is_system(escalation.decided_by),
                details=escalation.decision_text,
                url=reverse("request_detail", args=[opened.public_id]) if opened else "",
                order=escalation.pk,
            )
        ]

    return batch(rows, limit, "decided_at", make)


# The sources registered into the case timeline, in this order.
SOURCES = (request_steps, escalations_raised, escalation_decisions)
