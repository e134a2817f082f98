"""Every write of the service request flow: an explicit acting user, one transaction each, the
user's rights checked again on the server before viewflow moves a task (viewflow's own
permissions are queries, not gates)."""

from contextlib import contextmanager
from datetime import date

from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from viewflow.workflow.exceptions import FlowLockFailed
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from audit import snapshots
from audit.chain import audited_atomic
from casework import rules
from casework import services as case_services
from casework.enums import CaseState, InterventionKind, InterventionStatus, NeedStatus, ToolboxCategory
from casework.exceptions import BusinessRuleError, NotAllowedError, StaleStateError
from casework.models import Case, Intervention, Need, Organisation, ToolboxService, User
from notifications import outbox
from notifications.models import NotificationPreference, default_channel
from notifications.services import notify
from workflows import events
from workflows.compiled import CompiledRead
from workflows.flows import ServiceRequestFlow, locked_task, step_task_read
from workflows.models import (
    HELD_STATUSES,
    DeclineReason,
    Escalation,
    EscalationDecision,
    EventKind,
    RequestDecline,
    RequestStatus,
    ServiceRequest,
)

OPENABLE_CASE_STATES = (CaseState.DIAGNOSED, CaseState.ACTIVE)
FLOW = ServiceRequestFlow


class TaskTakenError(StaleStateError):
    """Another user claimed the task first."""


def _flow_lock_failed():
    return StaleStateError(_("Someone else is working on this request right now. Try again in a moment."))


def _member_of(user: User, organisation_id: int | None) -> bool:
    return organisation_id is not None and organisation_id in rules.user_roles(user).organisation_ids


def _check_open(task: Task):
    if task.status in (STATUS.DONE, STATUS.CANCELED, STATUS.REVIVED):
        raise StaleStateError(
            _("This task is closed: the request was answered, reassigned or cancelled in the meantime.")
        )


# --- Opening ---------------------------------------------------------------------------------


@audited_atomic
def request_open(
    *,
    actor: User,
    case: Case,
    need: Need,
    brief: str,
    service: ToolboxService | None = None,
    category: str = "",
    desired_date: date | None = None,
    submission_id=None,
) -> ServiceRequest:
    """The referent turns a need into a request: for a precise toolbox service or a category."""
    case = Case.objects.select_for_update(of=("self",)).select_related("company", "site").get(pk=case.pk)
    if not rules.is_case_referent(case, actor):
        raise NotAllowedError(_("Only the referent of the case opens requests."))
    if submission_id is not None and ServiceRequest.objects.filter(submission_id=submission_id).exists():
        raise StaleStateError(_("This request is already open (the form was sent twice)."))
    return _open(
        actor=actor,
        case=case,
        need=need,
        brief=brief,
        service=service,
        category=category,
        desired_date=desired_date,
        submission_id=submission_id,
    )


def _open(
    *,
    actor,
    case,
    need,
    brief,
    service=None,
    category="",
    desired_date=None,
    submission_id=None,
    on_behalf=False,
):
    """Open a request on a locked case: by its referent, or by an animator deciding an escalation
    (`on_behalf`, the referent stays the owner of the validation)."""
    if case.state not in OPENABLE_CASE_STATES:
        raise BusinessRuleError(
            _("Requests are opened once the needs are diagnosed (the case is “%(state)s”).")
            % {"state": case.get_state_display()}
        )
    if need.case_id != case.pk or need.status not in (NeedStatus.OPEN, NeedStatus.IN_PROGRESS):
        raise BusinessRuleError(_("Choose an open need of this company."))
    brief = (brief or "").strip()
    if not brief:
        raise BusinessRuleError(_("Describe what you expect from the partner."))
    if service is not None:
        if not service.is_active or not service.territories.filter(pk=case.company.territory_id).exists():
            raise BusinessRuleError(_("This service is not offered in the company's territory."))
        category = service.category
    elif category not in ToolboxCategory.values:
        raise BusinessRuleError(_("Choose a toolbox service or a category."))

    request = ServiceRequest(
        case=case,
        need=need,
        service=service,
        category=category,
        brief=brief,
        desired_date=desired_date,
        opened_by=actor,
        submission_id=submission_id,
    )
    request = FLOW.start.run(
        request=request, opened_text=gettext_lazy("Decided by the animators") if on_behalf else ""
    )
    if need.status == NeedStatus.OPEN:
        Need.objects.filter(pk=need.pk).update(status=NeedStatus.IN_PROGRESS, updated_at=timezone.now())
    if case.state == CaseState.DIAGNOSED and not on_behalf:
        case_services.case_transition(actor=actor, case=case, name="activate", expected_state=case.state)
    else:
        case_services.record_activity(case)
    return ServiceRequest.objects.get(pk=request.pk)


# --- Claiming ---------------------------------------------------------------------------------


def _may_handle(task: Task, request: ServiceRequest, user: User) -> bool:
    """Who may take a queued task: the provider's agents for a review, the site's animators for a
    dispatch."""
    if task.flow_task == FLOW.review:
        return _member_of(user, request.provider_id)
    if task.flow_task == FLOW.dispatch:
        return rules.is_site_animator(request.case.site_id, user)
    return False


@audited_atomic
def task_claim(*, actor: User, task_id: int) -> Task:
    """Take a task of a queue. When two users claim at once, the flow lock serialises them:
    exactly one wins and the other is told who took it."""
    try:
        with _locked(task_id, FLOW.review, FLOW.dispatch, tells_referent="request_claimed") as activation:
            task = activation.task
            request = activation.process
            if not _may_handle(task, request, actor):
                raise NotAllowedError(_("This task is not for you."))
            _check_open(task)
            if task.status == STATUS.ASSIGNED:
                if task.owner_id == actor.pk:
                    raise TaskTakenError(_("You already took this task."))
                raise TaskTakenError(
                    _("%(user)s took this task first.") % {"user": task.owner.get_full_name() or task.owner}
                )
            activation.assign(actor)
            if task.flow_task == FLOW.review:
                request.stage = RequestStatus.CLAIMED
                request.save(update_fields=["stage"])
                events.record(request, EventKind.CLAIMED, actor=actor, organisation=request.provider)
                events.tell(
                    request,
                    "request_claimed",
                    [request.case.referent],
                    gettext_lazy(
                        "%(agent)s (%(organisation)s) took the %(category)s request of %(company)s."
                    ),
                    actor=actor,
                    agent=actor,
                    organisation=request.provider,
                    category=request.category_label,
                )
            return task
    except FlowLockFailed:
        raise _flow_lock_failed() from None


@audited_atomic
def task_release(*, actor: User, task_id: int) -> Task:
    """Put a task one took back into the queue."""
    try:
        with _locked(task_id, FLOW.review, FLOW.dispatch) as activation:
            task = activation.task
            _check_open(task)
            if task.owner_id != actor.pk or task.status != STATUS.ASSIGNED:
                raise NotAllowedError(_("Only the person who took this task can release it."))
            activation.unassign()
            request = activation.process
            if task.flow_task == FLOW.review:
                request.stage = RequestStatus.WAITING
                request.save(update_fields=["stage"])
                events.record(request, EventKind.RELEASED, actor=actor, organisation=request.provider)
            return task
    except FlowLockFailed:
        raise _flow_lock_failed() from None


# What a step reads besides the task: its request, the request's case with the company and the
# referent (timeline, notifications, the audit entry's name of the request), its provider. Not
# the task's owner: only the message of a task taken by someone else names them.
STEP_RELATED = (
    "process__servicerequest__case__company",
    "process__servicerequest__case__referent",
    "process__servicerequest__provider",
)


_STEP_READS: dict[str | None, CompiledRead] = {}


def _step_read(event_type: str | None = None) -> CompiledRead:
    """A step's task with all of the above, locked with its request (`flows.locked_task`), in one
    query compiled once per database and form (seven tables: building and compiling it each time
    took longer than running it). With `event_type`, the notification the step sends the
    referent: the query also reads the referent's channel for it (`referent_channel`, None when
    they chose none), which `notify` then does not read again (`outbox.known_channel`)."""
    read = _STEP_READS.get(event_type)
    if read is None:

        def build(task):
            queryset = step_task_read(task, *STEP_RELATED)
            if event_type is None:
                return queryset
            chosen = NotificationPreference.objects.filter(
                user_id=OuterRef("process__servicerequest__case__referent_id"), event_type=event_type
            )
            return queryset.annotate(referent_channel=Subquery(chosen.values("channel")[:1]))

        read = _STEP_READS[event_type] = CompiledRead(build, "task")
    return read


_STEP_TASK = _step_read()


@contextmanager
def _locked(task_id: int, *nodes, tells_referent: str | None = None):
    """The activation of the human task `task_id` of one of `nodes`, under the flow lock on its
    request: viewflow's `task.activation()` — the flow lock, then the task read under it — with the
    lock and the read of the task, its request and what the step reads of it in one statement
    (instead of the lock, then the task, then the process and the request, then each related
    object). `tells_referent`: the event type of the notification the step sends the case's
    referent, whose channel for it is read in that same statement."""
    task = locked_task(_step_read(tells_referent), task_id)
    if task is None or task.flow_task not in nodes:
        raise StaleStateError(_("This task does not exist any more."))
    activation = task.flow_task.activation_class(task)
    if tells_referent is not None:
        outbox.known_channel(
            activation.process.case.referent,
            tells_referent,
            task.referent_channel or default_channel(tells_referent),
        )
    # Read under the lock: auditlog's "before" of the request's update, instead of its own read.
    snapshots.keep(activation.process)
    yield activation


def _execute(activation):
    """Complete a human task and let the flow move on (viewflow: ASSIGNED -> STARTED -> DONE)."""
    activation.start(None)
    activation.execute()


# --- Answering ---------------------------------------------------------------------------------


def _answerable(activation, actor: User) -> ServiceRequest:
    task = activation.task
    _check_open(task)
    request = activation.process
    if not _member_of(actor, request.provider_id):
        raise NotAllowedError(_("This task is not for you."))
    if task.status != STATUS.ASSIGNED or task.owner_id != actor.pk:
        if task.status == STATUS.ASSIGNED:
            raise TaskTakenError(
                _("%(user)s took this task: only they can answer.")
                % {"user": task.owner.get_full_name() or task.owner}
            )
        raise StaleStateError(_("Take the task first, then answer."))
    return request


@audited_atomic
def request_accept(*, actor: User, task_id: int) -> ServiceRequest:
    try:
        with _locked(task_id, FLOW.review, tells_referent="request_accepted") as activation:
            request = _answerable(activation, actor)
            now = timezone.now()
            request.accepted_by = actor
            request.accepted_at = now
            request.stage = RequestStatus.ACCEPTED
            request.overdue = False
            request.save(update_fields=["accepted_by", "accepted_at", "stage", "overdue"])
            events.record(
                request, EventKind.ACCEPTED, actor=actor, organisation=request.provider, activity_at=now
            )
            events.tell(
                request,
                "request_accepted",
                [request.case.referent],
                gettext_lazy("%(organisation)s accepted the %(category)s request of %(company)s."),
                actor=actor,
                organisation=request.provider,
                category=request.category_label,
            )
            _execute(activation)
            return request
    except FlowLockFailed:
        raise _flow_lock_failed() from None


@audited_atomic
def request_decline(
    *,
    actor: User,
    task_id: int,
    reason: str,
    reason_text: str = "",
    suggested_organisation: Organisation | None = None,
) -> ServiceRequest:
    """Decline with a reason: routing then skips this organisation, prefers the suggested one if it
    offers the category in the company's territory, else goes to the next provider."""
    if reason not in DeclineReason.values:
        raise BusinessRuleError(_("Choose the reason of the decline."))
    reason_text = (reason_text or "").strip()
    if reason == DeclineReason.OTHER and not reason_text:
        raise BusinessRuleError(_("Explain the reason of the decline."))
    try:
        with _locked(task_id, FLOW.review, tells_referent="request_declined") as activation:
            request = _answerable(activation, actor)
            if suggested_organisation is not None and suggested_organisation.pk == request.provider_id:
                raise BusinessRuleError(_("Suggest another organisation than yours."))
            RequestDecline.objects.create(
                request=request,
                organisation=request.provider,
                agent=actor,
                reason=reason,
                reason_text=reason_text,
                suggested_organisation=suggested_organisation,
            )
            label = DeclineReason(reason).label
            events.record(
                request,
                EventKind.DECLINED,
                actor=actor,
                organisation=request.provider,
                text=gettext_lazy("%(reason)s — %(details)s") if reason_text else label,
                params={"reason": label, "details": reason_text} if reason_text else None,
                activity_at=timezone.now(),
            )
            events.tell(
                request,
                "request_declined",
                [request.case.referent],
                gettext_lazy(
                    "%(organisation)s declined the %(category)s request of %(company)s: %(reason)s."
                ),
                actor=actor,
                organisation=request.provider,
                category=request.category_label,
                reason=label,
            )
            if suggested_organisation is not None:
                request.data = {**(request.data or {}), "preferred_provider": suggested_organisation.pk}
                request.save(update_fields=["data"])
            _execute(activation)  # -> route: next provider, or the animators
            return ServiceRequest.objects.get(pk=request.pk)
    except FlowLockFailed:
        raise _flow_lock_failed() from None


@audited_atomic
def request_dispatch(*, actor: User, task_id: int, provider: Organisation) -> ServiceRequest:
    """The animators give an unroutable or overdue request to a partner by hand."""
    try:
        with _locked(task_id, FLOW.dispatch) as activation:
            task = activation.task
            _check_open(task)
            request = activation.process
            if not rules.is_site_animator(request.case.site_id, actor):
                raise NotAllowedError(_("Only the animators of the site choose the partner."))
            if task.status == STATUS.NEW:
                activation.assign(actor)
            elif task.owner_id != actor.pk:
                raise TaskTakenError(
                    _("%(user)s is already handling this request.")
                    % {"user": task.owner.get_full_name() or task.owner}
                )
            if not provider.is_active:
                raise BusinessRuleError(_("This organisation is not active."))
            now = timezone.now()
            request.overdue = False
            FLOW.route_to(request, provider, now, actor=actor)
            events.record(request, EventKind.ASSIGNED, actor=actor, organisation=provider)
            _execute(activation)  # -> review by the chosen provider, with a new deadline
            return ServiceRequest.objects.get(pk=request.pk)
    except FlowLockFailed:
        raise _flow_lock_failed() from None


# --- Delivery and validation ---------------------------------------------------------------------


def _delivering_request(request_id: int, actor: User) -> ServiceRequest:
    request = (
        ServiceRequest.objects.select_for_update(of=("self",))
        .select_related("case", "provider")
        .get(pk=request_id)
    )
    if request.stage != RequestStatus.ACCEPTED:
        raise StaleStateError(_("This request is not in delivery any more."))
    if not _member_of(actor, request.provider_id):
        raise NotAllowedError(_("Only the partner delivering this request can do this."))
    return request


@audited_atomic
def intervention_plan(
    *, actor: User, request: ServiceRequest, kind: str, planned_on: date, notes: str = ""
) -> Intervention:
    request = _delivering_request(request.pk, actor)
    intervention = Intervention(
        case=request.case,
        service_request=request,
        kind=kind,
        planned_on=planned_on,
        owner=actor,
        owner_organisation=request.provider,
        notes=(notes or "").strip(),
    )
    case_services.validate_model(
        intervention, exclude=["case", "service_request", "owner", "owner_organisation"]
    )
    intervention.save()
    events.record(
        request,
        EventKind.INTERVENTION_PLANNED,
        actor=actor,
        organisation=request.provider,
        text=gettext_lazy("%(kind)s on %(date)s"),
        params={"kind": InterventionKind(kind).label, "date": f"{planned_on:%d/%m/%Y}"},
        activity_at=timezone.now(),
    )
    return intervention


@audited_atomic
def intervention_record(
    *, actor: User, intervention: Intervention, status: str, outcome: str = ""
) -> Intervention:
    """Record a planned intervention as done (with its outcome) or cancelled."""
    intervention = Intervention.objects.select_for_update().get(pk=intervention.pk)
    if intervention.service_request_id is None:
        raise NotAllowedError(_("This intervention is not part of a request."))
    request = _delivering_request(intervention.service_request_id, actor)
    if intervention.status != InterventionStatus.PLANNED:
        raise StaleStateError(_("This intervention was already recorded."))
    if status not in (InterventionStatus.DONE, InterventionStatus.CANCELLED):
        raise BusinessRuleError(_("Choose done or cancelled."))
    outcome = (outcome or "").strip()
    if status == InterventionStatus.DONE and not outcome:
        raise BusinessRuleError(_("Describe the outcome of the intervention."))
    intervention.status = status
    intervention.outcome = outcome
    intervention.save(update_fields=["status", "outcome"])
    kind = (
        EventKind.INTERVENTION_DONE if status == InterventionStatus.DONE else EventKind.INTERVENTION_CANCELLED
    )
    events.record(
        request,
        kind,
        actor=actor,
        organisation=request.provider,
        text=gettext_lazy("%(kind)s: %(outcome)s") if outcome else InterventionKind(intervention.kind).label,
        params={"kind": InterventionKind(intervention.kind).label, "outcome": outcome} if outcome else None,
        activity_at=timezone.now(),
    )
    return intervention


def _count(value, label):
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BusinessRuleError(_("%(label)s: enter a whole number.") % {"label": label}) from None
    if not 0 <= number <= 10000:
        raise BusinessRuleError(_("%(label)s: enter a number between 0 and 10,000.") % {"label": label})
    return number


@audited_atomic
def request_deliver(
    *, actor: User, task_id: int, result_text: str, candidates=None, hires=None, trainings=None
) -> ServiceRequest:
    """The partner declares the delivery done, with its result; the referent then validates."""
    result_text = (result_text or "").strip()
    if not result_text:
        raise BusinessRuleError(_("Describe the result of the delivery."))
    numbers = {
        "result_candidates": _count(candidates, _("Candidates proposed")),
        "result_hires": _count(hires, _("Hires")),
        "result_trainings": _count(trainings, _("People entering training")),
    }
    try:
        with _locked(task_id, FLOW.deliver, tells_referent="request_delivered") as activation:
            task = activation.task
            _check_open(task)
            request = activation.process
            if not _member_of(actor, request.provider_id):
                raise NotAllowedError(_("Only the partner delivering this request can do this."))
            if task.owner_id != actor.pk:
                activation.reassign(actor)  # a colleague of the same organisation takes over
            if request.interventions.filter(status=InterventionStatus.PLANNED).exists():
                raise BusinessRuleError(_("Record the planned interventions as done or cancelled first."))
            now = timezone.now()
            for field, value in numbers.items():
                setattr(request, field, value)
            request.result_text = result_text
            request.delivered_at = now
            request.stage = RequestStatus.DELIVERED
            request.save()
            events.record(
                request,
                EventKind.DELIVERED,
                actor=actor,
                organisation=request.provider,
                text=result_text,
                activity_at=now,
            )
            events.tell(
                request,
                "request_delivered",
                [request.case.referent],
                gettext_lazy(
                    "%(organisation)s delivered the %(category)s request of %(company)s: please validate."
                ),
                actor=actor,
                organisation=request.provider,
                category=request.category_label,
            )
            _execute(activation)  # -> validate, assigned to the referent
            return ServiceRequest.objects.get(pk=request.pk)
    except FlowLockFailed:
        raise _flow_lock_failed() from None


@audited_atomic
def request_validate(*, actor: User, task_id: int, accept: bool, comment: str = "") -> ServiceRequest:
    """The referent validates the delivery (closing the request) or sends it back with a comment."""
    comment = (comment or "").strip()
    if not accept and not comment:
        raise BusinessRuleError(_("Say what is missing before sending the request back."))
    try:
        with _locked(task_id, FLOW.validate) as activation:
            task = activation.task
            _check_open(task)
            request = activation.process
            if not rules.is_case_referent(request.case, actor):
                raise NotAllowedError(_("Only the referent of the case validates the delivery."))
            if task.owner_id != actor.pk:
                activation.reassign(actor)  # the case changed hands since the task was created
            now = timezone.now()
            if accept:
                request.validated_at = now
                request.stage = RequestStatus.CLOSED
                kind, event_type = EventKind.VALIDATED, "request_validated"
                message = gettext_lazy("The referent validated the %(category)s request of %(company)s.")
            else:
                request.stage = RequestStatus.ACCEPTED
                request.delivered_at = None
                kind, event_type = EventKind.SENT_BACK, "request_sent_back"
                message = gettext_lazy(
                    "The referent sent back the %(category)s request of %(company)s: %(comment)s"
                )
            request.save()
            events.record(request, kind, actor=actor, text=comment, activity_at=now)
            events.tell(
                request,
                event_type,
                events.provider_agents(request.provider),
                message,
                actor=actor,
                category=request.category_label,
                comment=comment,
            )
            _execute(activation)  # -> end, or back to delivery
            if (
                accept
                and not request.need.requests.exclude(pk=request.pk)
                .exclude(stage__in=[RequestStatus.CLOSED, RequestStatus.CANCELLED])
                .exists()
            ):
                Need.objects.filter(pk=request.need_id, status=NeedStatus.IN_PROGRESS).update(
                    status=NeedStatus.MET, updated_at=now
                )
            return ServiceRequest.objects.get(pk=request.pk)
    except FlowLockFailed:
        raise _flow_lock_failed() from None


@audited_atomic
def request_cancel(*, actor: User, request: ServiceRequest, reason: str) -> ServiceRequest:
    """The referent cancels an open request, with a reason."""
    reason = (reason or "").strip()
    if not reason:
        raise BusinessRuleError(_("Please give a reason."))
    request = ServiceRequest.objects.select_related("case__company").get(pk=request.pk)
    if not rules.is_case_referent(request.case, actor):
        raise NotAllowedError(_("Only the referent of the case cancels a request."))
    return _cancel(request, actor, reason)


def _cancel(request: ServiceRequest, actor: User, reason: str) -> ServiceRequest:
    """Cancel the process and every task still to do; tell whoever was working on it."""
    try:
        with FLOW.lock(request.pk):
            request = ServiceRequest.objects.select_related("case__company", "case__site", "provider").get(
                pk=request.pk
            )
            if not request.is_open:
                raise StaleStateError(_("This request is already closed."))
            provider_was_involved = request.stage in HELD_STATUSES
            waiting_for_animators = request.stage == RequestStatus.UNROUTABLE
            # One save, so one audit entry: viewflow's cancel saves the process (its status and end)
            # with our stage and reason already set.
            request.stage = RequestStatus.CANCELLED
            request.cancel_reason = reason
            FLOW.instance.cancel(request)
            events.record(request, EventKind.CANCELLED, actor=actor, text=reason, activity_at=timezone.now())
            recipients = events.provider_agents(request.provider) if provider_was_involved else []
            if waiting_for_animators:
                recipients += events.site_animators(request.case)
            events.tell(
                request,
                "request_cancelled",
                [*recipients, request.case.referent],
                gettext_lazy("The %(category)s request of %(company)s is cancelled: %(reason)s"),
                actor=actor,
                category=request.category_label,
                reason=reason,
            )
            return request
    except FlowLockFailed:
        raise _flow_lock_failed() from None


# --- Escalation to the animators --------------------------------------------------------------------


@audited_atomic
def escalation_raise(*, actor: User, case: Case, text: str) -> Escalation:
    """The referent escalates a blocked case; the site's animators are told and must decide."""
    text = (text or "").strip()
    if not text:
        raise BusinessRuleError(_("Say what blocks the case."))
    case = Case.objects.select_for_update(of=("self",)).select_related("company", "site").get(pk=case.pk)
    if not rules.is_case_referent(case, actor):
        raise NotAllowedError(_("Only the referent of the case escalates it."))
    if not case.is_open or case.state == CaseState.PROPOSED:
        raise BusinessRuleError(_("Only an enrolled case that is still open can be escalated."))
    if case.escalations.filter(decided_at__isnull=True).exists():
        raise StaleStateError(_("This case is already escalated: the animators have not decided yet."))
    escalation = Escalation.objects.create(case=case, raised_by=actor, text=text)
    notify(
        event_type="escalation_raised",
        recipients=events.site_animators(case),
        message=gettext_lazy("%(actor)s escalates the case of %(company)s: %(text)s"),
        params={"actor": actor, "company": case.company.name, "text": text},
        actor=actor,
        case=case,
    )
    case_services.record_activity(case)
    return escalation


@audited_atomic
def escalation_decide(
    *,
    actor: User,
    escalation: Escalation,
    decision: str,
    text: str = "",
    service: ToolboxService | None = None,
    need: Need | None = None,
    to_user: User | None = None,
    to_organisation: Organisation | None = None,
    outcome: str = "",
) -> Escalation:
    """The animators decide: mobilise another partner (opens a request on the chosen service),
    reassign the referent (proposes a handover), close the case, or only note. The referent is told."""
    escalation = (
        Escalation.objects.select_for_update(of=("self",))
        .select_related("case__site", "case__company")
        .get(pk=escalation.pk)
    )
    case = escalation.case
    if not rules.is_site_animator(case.site_id, actor):
        raise NotAllowedError(_("Only the animators of the site decide on an escalation."))
    if not escalation.is_open:
        raise StaleStateError(_("This escalation was already decided."))
    if decision not in EscalationDecision.values:
        raise BusinessRuleError(_("Choose a decision."))
    text = (text or "").strip()
    if decision == EscalationDecision.MOBILISE:
        if service is None or need is None:
            raise BusinessRuleError(_("Choose the need and the partner's service to mobilise."))
        escalation.service_request = _open(
            actor=actor, case=case, need=need, service=service, brief=text or escalation.text, on_behalf=True
        )
    elif decision == EscalationDecision.REASSIGN:
        if to_user is None or to_organisation is None:
            raise BusinessRuleError(_("Choose the new referent and the organisation they act for."))
        case_services.handover_propose(
            actor=actor, case=case, to_user=to_user, to_organisation=to_organisation, message=text
        )
    elif decision == EscalationDecision.CLOSE:
        # The animators' decision ends the open requests of the case first.
        for open_request in case.requests.exclude(stage__in=[RequestStatus.CLOSED, RequestStatus.CANCELLED]):
            _cancel(open_request, actor, text or escalation.text)
        case.refresh_from_db()
        name = "close" if case.state in (CaseState.ACTIVE, CaseState.FOLLOW_UP) else "withdraw"
        case_services.case_transition(
            actor=actor,
            case=case,
            name=name,
            expected_state=case.state,
            reason=text or escalation.text,
            outcome=outcome,
        )
    escalation.decision = decision
    escalation.decision_text = text
    escalation.decided_by = actor
    escalation.decided_at = timezone.now()
    escalation.save()
    notify(
        event_type="escalation_decided",
        recipients=[case.referent],
        message=gettext_lazy(
            "The animators decided on the escalation of %(company)s: %(decision)s. %(text)s"
        ),
        params={"company": case.company.name, "decision": EscalationDecision(decision).label, "text": text},
        actor=actor,
        case=case,
    )
    return escalation
