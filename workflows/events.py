"""Timeline rows and notifications of a request, written inside the step's transaction."""

from django.utils import translation

from casework.models import SiteAnimator, User
from notifications.services import notify
from workflows import board
from workflows.models import RequestEvent


def record(request, kind, *, actor=None, organisation=None, text="", params=None, activity_at=None):
    """One timeline row. `text` may be a lazy string with %(name)s placeholders filled from
    `params`; it is stored in French, the users' language, whatever the actor's interface.
    `activity_at`: a user's step also dates the case's last activity (what
    `casework.services.record_activity` does), in the same UPDATE as the board's figures."""
    with translation.override("fr"):
        rendered = str(text) % params if params else str(text)
    event = RequestEvent(request=request, kind=kind, actor=actor, organisation=organisation, text=rendered)
    # Every step of a request goes through here (services, flow callbacks, the deadline timer):
    # the one place that keeps the case's board summary true. The row and the summary's refresh
    # are one statement on PostgreSQL.
    board.insert_and_refresh_case(
        event, request.case_id, request.case.site_id, request.case.public_id, activity_at=activity_at
    )
    return event


def provider_agents(organisation) -> list[User]:
    if organisation is None:
        return []
    return list(
        User.objects.filter(
            is_active=True, memberships__organisation=organisation, memberships__is_active=True
        ).distinct()
    )


def site_animators(case) -> list[User]:
    return [a.user for a in SiteAnimator.objects.filter(site_id=case.site_id).select_related("user")]


def tell(request, event_type, recipients, message, *, actor=None, **params):
    notify(
        event_type=event_type,
        recipients=recipients,
        message=message,
        params={"company": request.case.company.name, **params},
        actor=actor,
        case=request.case,
        service_request=request,
    )
