"""Pages of the service requests: open a request, follow it, act on its tasks, task lists.
Thin: reads through `selectors`, writes through `services`; the task a user acts on is found on
the server from the request and the user's rights, never taken from the client."""

import uuid

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from viewflow.workflow.status import STATUS

from casework import rules
from casework import selectors as case_selectors
from casework.exceptions import BusinessRuleError
from casework.models import Intervention
from workflows import selectors, services
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.forms import (
    CancelForm,
    DeclineForm,
    DeliverForm,
    DispatchForm,
    EscalationDecisionForm,
    EscalationForm,
    InterventionPlanForm,
    InterventionRecordForm,
    RequestOpenForm,
    ValidateForm,
)


@require_http_methods(["GET", "POST"])
def request_open(request, public_id):
    case = case_selectors.case_get(user=request.user, public_id=public_id)
    if not rules.is_case_referent(case, request.user):
        messages.error(request, _("Only the referent of the case opens requests."))
        return redirect("case_detail", public_id=case.public_id)
    form = RequestOpenForm(
        request.POST or None,
        case=case,
        services=selectors.services_for_case(case),
        initial={"submission_id": uuid.uuid4(), "need": request.GET.get("besoin")},
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            opened = services.request_open(
                actor=request.user,
                case=case,
                need=data["need"],
                service=data["service"],
                category=data["category"],
                brief=data["brief"],
                desired_date=data["desired_date"],
                submission_id=data["submission_id"],
            )
        except BusinessRuleError as error:
            form.add_error(None, error.message)
        else:
            if opened.provider_id:
                messages.success(
                    request,
                    _("The request is sent to %(organisation)s.") % {"organisation": opened.provider.name},
                )
            else:
                messages.warning(
                    request, _("No partner offers this in the territory: the animators will choose one.")
                )
            return redirect("request_detail", public_id=opened.public_id)
    return render(request, "workflows/request_open.html", {"case": case, "form": form})


def _actions(service_request, user, open_tasks):
    """What this user may do on the request now, with the form of each action."""
    actions = {}
    review = next((t for t in open_tasks if t.flow_task == FLOW.review), None)
    dispatch = next((t for t in open_tasks if t.flow_task == FLOW.dispatch), None)
    deliver = next((t for t in open_tasks if t.flow_task == FLOW.deliver), None)
    validate = next((t for t in open_tasks if t.flow_task == FLOW.validate), None)
    roles = rules.user_roles(user)
    is_provider = service_request.provider_id in roles.organisation_ids
    if review and is_provider:
        if review.status == STATUS.NEW:
            actions["claim"] = True
        elif review.owner_id == user.pk:
            actions["accept"] = True
            actions["decline"] = DeclineForm(prefix="decline")
            actions["release"] = True
        actions["review_owner"] = review.owner
    if dispatch and rules.is_site_animator(service_request.case.site_id, user):
        actions["dispatch"] = DispatchForm(prefix="dispatch")
    if deliver and is_provider:
        actions["plan"] = InterventionPlanForm(prefix="plan")
        actions["record"] = True
        actions["deliver"] = DeliverForm(prefix="deliver")
    if validate and rules.is_case_referent(service_request.case, user):
        actions["validate"] = ValidateForm(prefix="validate")
    if service_request.is_open and rules.is_case_referent(service_request.case, user):
        actions["cancel"] = CancelForm(prefix="cancel")
    return actions


@require_GET
def request_detail(request, public_id):
    service_request = selectors.request_get(user=request.user, public_id=public_id)
    detail = selectors.request_detail(service_request)
    return render(
        request,
        "workflows/request_detail.html",
        {
            "service_request": service_request,
            **detail,
            "actions": _actions(service_request, request.user, detail["open_tasks"]),
        },
    )


def _open_task(service_request, *nodes):
    task = selectors.open_task(service_request, *nodes)
    if task is None:
        raise BusinessRuleError(_("There is nothing to do on this request at this step any more."))
    return task


def _run(name, service_request, data, user):
    """Call the service of action `name`; raise BusinessRuleError with a French message."""
    if name == "claim":
        task = _open_task(service_request, FLOW.review, FLOW.dispatch)
        services.task_claim(actor=user, task_id=task.pk)
        return _("You took this request.")
    if name == "release":
        services.task_release(actor=user, task_id=_open_task(service_request, FLOW.review).pk)
        return _("The request is back in your organisation's queue.")
    if name == "accept":
        services.request_accept(actor=user, task_id=_open_task(service_request, FLOW.review).pk)
        return _("You accepted the request. Plan the interventions.")
    if name == "decline":
        form = _valid(DeclineForm(data, prefix="decline"))
        services.request_decline(
            actor=user,
            task_id=_open_task(service_request, FLOW.review).pk,
            reason=form["reason"],
            reason_text=form["reason_text"],
            suggested_organisation=form["suggested_organisation"],
        )
        return _("You declined the request; it goes to another partner.")
    if name == "dispatch":
        form = _valid(DispatchForm(data, prefix="dispatch"))
        services.request_dispatch(
            actor=user, task_id=_open_task(service_request, FLOW.dispatch).pk, provider=form["provider"]
        )
        return _("The request is sent to %(organisation)s.") % {"organisation": form["provider"].name}
    if name == "plan":
        form = _valid(InterventionPlanForm(data, prefix="plan"))
        services.intervention_plan(actor=user, request=service_request, **form)
        return _("The intervention is planned.")
    if name == "record":
        form = _valid(InterventionRecordForm(data, prefix="record"))
        intervention = Intervention.objects.filter(
            pk=form["intervention"], service_request=service_request
        ).first()
        if intervention is None:
            raise BusinessRuleError(_("This intervention does not exist any more."))
        services.intervention_record(
            actor=user, intervention=intervention, status=form["status"], outcome=form["outcome"]
        )
        return _("The intervention is recorded.")
    if name == "deliver":
        form = _valid(DeliverForm(data, prefix="deliver"))
        services.request_deliver(actor=user, task_id=_open_task(service_request, FLOW.deliver).pk, **form)
        return _("The delivery is declared done. The referent will validate it.")
    if name in ("validate", "send_back"):
        form = _valid(ValidateForm(data, prefix="validate"))
        services.request_validate(
            actor=user,
            task_id=_open_task(service_request, FLOW.validate).pk,
            accept=name == "validate",
            comment=form["comment"],
        )
        return (
            _("The request is closed.")
            if name == "validate"
            else _("The request is sent back to the partner.")
        )
    if name == "cancel":
        form = _valid(CancelForm(data, prefix="cancel"))
        services.request_cancel(actor=user, request=service_request, reason=form["reason"])
        return _("The request is cancelled.")
    raise BusinessRuleError(_("Unknown action."))


def _valid(form):
    if not form.is_valid():
        errors = [
            f"{form.fields[name].label}\u00a0: {' '.join(errs)}" if name in form.fields else " ".join(errs)
            for name, errs in form.errors.items()
        ]
        raise BusinessRuleError(" ".join(errors))
    return form.cleaned_data


@require_POST
def request_action(request, public_id, name):
    service_request = selectors.request_get(user=request.user, public_id=public_id)
    try:
        done = _run(name, service_request, request.POST, request.user)
    except BusinessRuleError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done)
        # A decline takes the case out of the decliner's sight: back to their queue, not to a 404.
        if not selectors.requests_visible_to(request.user).filter(pk=service_request.pk).exists():
            return redirect(f"{reverse('task_list')}?vue=file")
    return redirect("request_detail", public_id=service_request.public_id)


TASK_VIEWS = {
    "mes-taches": ("mine", selectors.my_tasks),
    "file": ("queue", selectors.queue),
    "historique": ("history", selectors.history),
}


@require_GET
def task_list(request):
    view = request.GET.get("vue", "mes-taches")
    if view not in TASK_VIEWS:
        view = "mes-taches"
    key, selector = TASK_VIEWS[view]
    page = Paginator(selector(request.user), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "workflows/task_list.html",
        {
            "page": page,
            "view": view,
            "key": key,
            "decisions": selectors.decisions_waiting(request.user) if key == "mine" else None,
            "today": timezone.localdate(),
        },
    )


@require_POST
def escalation_raise(request, public_id):
    case = case_selectors.case_get(user=request.user, public_id=public_id)
    form = EscalationForm(request.POST)
    try:
        services.escalation_raise(actor=request.user, case=case, text=_valid(form)["text"])
    except BusinessRuleError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("The animators of the site are told; they will decide."))
    return redirect("case_detail", public_id=case.public_id)


@require_POST
def escalation_decide(request, public_id):
    case = case_selectors.case_get(user=request.user, public_id=public_id)
    escalation = case.escalations.filter(decided_at__isnull=True).first()
    if escalation is None:
        messages.error(request, _("There is no escalation waiting on this case any more."))
        return redirect("case_detail", public_id=case.public_id)
    form = EscalationDecisionForm(
        request.POST,
        case=case,
        services=selectors.services_for_case(case),
        memberships=case_selectors.handover_candidates(case),
    )
    try:
        data = _valid(form)
        membership = data["to_membership"]
        services.escalation_decide(
            actor=request.user,
            escalation=escalation,
            decision=data["decision"],
            text=data["text"],
            need=data["need"],
            service=data["service"],
            to_user=membership.user if membership else None,
            to_organisation=membership.organisation if membership else None,
            outcome=data["outcome"],
        )
    except BusinessRuleError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Your decision is recorded and the referent is told."))
    return redirect("case_detail", public_id=case.public_id)
