"""HTTP views of the casework domain. They stay thin: read through `selectors`, write through
`services`, and turn domain errors into French messages."""

import uuid

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.selectors import viewers_of
from audit.services import is_live_refresh, record_access
from casework import pagination, rules, selectors, services
from casework.enums import CaseOutcome
from casework.exceptions import BusinessRuleError
from casework.forms import (
    CaseFilterForm,
    CaseProposeForm,
    CommentForm,
    HandoverForm,
    NeedEditForm,
    NeedForm,
    ToolboxFilterForm,
    TransitionForm,
)
from casework.models import Need, PilotSite
from casework.timeline import HISTORY_PAGE, Position, case_timeline


@require_GET
def home(request):
    user = request.user
    roles = rules.user_roles(user)
    context = {"roles": roles}
    if roles.is_referent:
        context["my_cases"] = list(selectors.case_list(user=user).filter(referent=user).open()[:10])
    if roles.is_animator:
        context["animated_sites"] = selectors.site_overview(site_ids=roles.animated_site_ids)
        context["proposals"] = list(
            selectors.case_list(user=user, state="proposed").filter(site_id__in=roles.animated_site_ids)[:20]
        )
    if roles.organisation_ids:
        context["is_member"] = True
    if roles.is_observer:
        context["observed_sites"] = selectors.site_overview(
            site_ids=selectors.observer_site_ids(user), masked=True
        )
    if user.is_platform_admin:
        context["all_sites"] = selectors.site_overview(site_ids=PilotSite.objects.values("pk"))
    return render(request, "casework/home.html", context)


@require_http_methods(["GET", "POST"])
def charter(request):
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not next_url.startswith("/") or not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}
    ):
        next_url = ""
    if request.method == "POST":
        if request.POST.get("accept") != "yes":
            messages.error(request, _("You must tick the box to accept the charter."))
        else:
            try:
                services.charter_accept(actor=request.user, version=request.POST.get("version"))
            except BusinessRuleError as error:
                messages.error(request, error.message)
            else:
                messages.success(request, _("Thank you. You accepted the confidentiality charter."))
                return HttpResponseRedirect(next_url or reverse("home"))
    return render(
        request,
        "casework/charter.html",
        {"version": settings.CONFIDENTIALITY_CHARTER_VERSION, "next": next_url},
    )


# The case list's order (Case.Meta.ordering: the latest activity first), for its keyset pagination.
CASE_LIST_ORDER = [pagination.Key("last_activity_at", descending=True), pagination.Key("id", descending=True)]


@require_GET
def case_list(request):
    sites = selectors.sites_for_filter(request.user)
    form = CaseFilterForm(request.GET or None)
    form.fields["site"].queryset = sites
    cases = selectors.case_list(user=request.user)
    if form.is_valid():
        data = form.cleaned_data
        cases = selectors.case_list(
            user=request.user, site=data["site"], state=data["state"], query=data["q"]
        )
    elif form.is_bound:
        messages.error(request, _("The filters are not valid; all cases are shown."))
    # Keyset pagination: the last page of 100,000 cases costs what the first does.
    page = pagination.keyset_page(cases, CASE_LIST_ORDER, settings.CASE_LIST_PAGE_SIZE, request.GET)
    if page.invalid:
        messages.error(request, _("This page link is no longer valid: the first page is shown."))
    query_string = pagination.without_position(request.GET)
    context = {
        "form": form,
        "page": page,
        "total": cases.count(),
        "links": pagination.page_links(page, query_string),
        "query_string": query_string,
    }
    partial = request.htmx and not request.htmx.history_restore_request
    template = "casework/partials/case_table.html" if partial else "casework/case_list.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_http_methods(["GET", "POST"])
def case_propose(request):
    user = request.user
    if not rules.can_propose_cases(user):
        messages.error(request, _("Only advisers who may act as referent can propose a company."))
        return redirect("home")
    sites = selectors.sites_for_proposal(user)
    organisations = selectors.referent_organisations(user)
    form = CaseProposeForm(request.POST or None, sites=sites, organisations=organisations)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            case = services.case_propose(
                actor=user,
                site=data["site"],
                referent_organisation=data["referent_organisation"],
                company=services.CompanyData(
                    siret=data["siret"],
                    name=data["name"],
                    naf_code=data["naf_code"],
                    size_band=data["size_band"],
                    address=data["address"],
                    postcode=data["postcode"],
                    commune=data["commune"],
                    territory_id=data["territory"].pk,
                    contact_name=data["contact_name"],
                    contact_email=data["contact_email"],
                    contact_phone=data["contact_phone"],
                ),
                consent=data["consent"],
                summary=data["summary"],
            )
        except BusinessRuleError as error:
            form.add_error(None, error.message)
        else:
            messages.success(
                request,
                _("The case of %(company)s is proposed. The animators of %(site)s will examine it.")
                % {"company": case.company.name, "site": case.site.name},
            )
            return redirect("case_detail", public_id=case.public_id)
    return render(request, "casework/case_propose.html", {"form": form})


@require_GET
def case_detail(request, public_id):
    case = selectors.case_get(user=request.user, public_id=public_id)
    # The page's live part re-read after a notification is not a new display of the case.
    record_access(actor=request.user, instance=case, what="case_detail", refresh=is_live_refresh(request))
    context = {
        "case": case,
        **selectors.case_detail(case, request.user),
        "actions": [
            {
                "name": t.name,
                "label": t.custom.get("label", t.name),
                "reason": t.custom.get("reason", False),
                "outcome": t.custom.get("outcome", False),
                "blocked": blocked,
                "form": TransitionForm(initial={"expected_state": case.state}, prefix=t.name),
            }
            for t, blocked in rules.case_transition_options(case, request.user)
        ],
        "can_edit_needs": rules.can_edit_needs(case, request.user),
        "can_open_request": case.state in ("diagnosed", "active")
        and rules.is_case_referent(case, request.user),
        "can_record_consent": not case.has_consent and rules.can_record_consent(case, request.user),
        "handover": selectors.pending_handover(case),
        "is_referent": rules.is_case_referent(case, request.user),
        "outcome_choices": CaseOutcome.choices,
        "is_animator": rules.is_site_animator(case.site_id, request.user),
        "toolbox_services": list(selectors.toolbox_for_case(case))
        if rules.is_site_animator(case.site_id, request.user)
        else [],
        "handover_form": HandoverForm(memberships=selectors.handover_candidates(case))
        if case.is_open and rules.is_referent_or_animator(case, request.user)
        else None,
        **_comment_context(case, request.user),
        # Who displayed the case: shown to those who answer for it.
        "viewers": viewers_of(case) if rules.is_referent_or_animator(case, request.user) else None,
    }
    return render(request, "casework/case_detail.html", context)


@require_GET
def case_history(request, public_id):
    """The case's whole history, HISTORY_PAGE events at a time from the latest (« Voir les
    événements plus anciens »): each page starts where the previous one ended."""
    case = selectors.case_get(user=request.user, public_id=public_id)
    before, invalid = None, False
    if request.GET.get("avant"):
        try:
            before = Position.from_cursor(request.GET["avant"])
        except ValueError:
            invalid = True
            messages.error(request, _("This page link is no longer valid: the first page is shown."))
    record_access(actor=request.user, instance=case, what="case_history", refresh=is_live_refresh(request))
    context = {
        "case": case,
        "timeline": case_timeline(case, request.user, limit=HISTORY_PAGE, before=before),
        "first_page": before is None and not invalid,
    }
    return render(request, "casework/case_history.html", context)


def _comment_context(case, user, form=None) -> dict:
    # The case was read through the user's scoped queryset: whoever sees it may comment.
    return {
        "comment_form": form or CommentForm(initial={"submission_id": uuid.uuid4()}),
        "mentionable": selectors.mentionable(case),
    }


@require_http_methods(["GET", "POST"])
def comment_add(request, public_id):
    case = selectors.case_get(user=request.user, public_id=public_id)
    form = CommentForm(request.POST or None, initial={"submission_id": uuid.uuid4()})
    if request.method == "POST" and form.is_valid():
        try:
            services.comment_add(actor=request.user, case=case, **form.cleaned_data)
        except BusinessRuleError as error:
            form.add_error("body", error.message)
        else:
            messages.success(request, _("Your comment is posted."))
            return HttpResponseRedirect(reverse("case_detail", args=[case.public_id]) + "#commentaires")
    return render(
        request, "casework/comment_form.html", {"case": case, **_comment_context(case, request.user, form)}
    )


@require_POST
def case_transition(request, public_id, name):
    case = selectors.case_get(user=request.user, public_id=public_id)
    form = TransitionForm(request.POST, prefix=name)
    if not form.is_valid():
        messages.error(request, _("The form is incomplete. Reload the page and try again."))
        return redirect("case_detail", public_id=case.public_id)
    try:
        case = services.case_transition(
            actor=request.user,
            case=case,
            name=name,
            expected_state=form.cleaned_data["expected_state"],
            reason=form.cleaned_data["reason"],
            outcome=form.cleaned_data["outcome"],
        )
    except BusinessRuleError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, _("Done: the case is now “%(state)s”.") % {"state": case.get_state_display()}
        )
    return redirect("case_detail", public_id=case.public_id)


@require_POST
def case_consent(request, public_id):
    case = selectors.case_get(user=request.user, public_id=public_id)
    try:
        services.case_record_consent(actor=request.user, case=case)
    except BusinessRuleError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("The company's consent is recorded."))
    return redirect("case_detail", public_id=case.public_id)


@require_http_methods(["GET", "POST"])
def need_create(request, public_id):
    case = selectors.case_get(user=request.user, public_id=public_id)
    if not rules.can_edit_needs(case, request.user):
        messages.error(request, _("You cannot record needs on this case."))
        return redirect("case_detail", public_id=case.public_id)
    form = NeedForm(request.POST or None, initial={"submission_id": uuid.uuid4()})
    if request.method == "POST" and form.is_valid():
        try:
            services.need_create(actor=request.user, case=case, **form.cleaned_data)
        except BusinessRuleError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, _("The need is recorded."))
            return redirect("case_detail", public_id=case.public_id)
    return render(request, "casework/need_form.html", {"case": case, "form": form, "need": None})


@require_http_methods(["GET", "POST"])
def need_edit(request, public_id, need_id):
    case = selectors.case_get(user=request.user, public_id=public_id)
    need = get_object_or_404(Need, case=case, pk=need_id)
    if not rules.can_edit_needs(case, request.user):
        messages.error(request, _("You cannot change the needs of this case."))
        return redirect("case_detail", public_id=case.public_id)
    form = NeedEditForm(request.POST or None, instance=need)
    if request.method == "POST" and form.is_valid():
        try:
            services.need_update(actor=request.user, need=need, **form.cleaned_data)
        except BusinessRuleError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, _("The need is updated."))
            return redirect("case_detail", public_id=case.public_id)
    return render(request, "casework/need_form.html", {"case": case, "form": form, "need": need})


@require_GET
def company_detail(request, public_id):
    company = selectors.company_get(user=request.user, public_id=public_id)
    record_access(
        actor=request.user, instance=company, what="company_detail", refresh=is_live_refresh(request)
    )
    return render(
        request,
        "casework/company_detail.html",
        {
            "company": company,
            "cases": selectors.company_cases(user=request.user, company=company),
            "contacts": list(company.contacts.all()),
        },
    )


@require_GET
def toolbox(request):
    form = ToolboxFilterForm(request.GET or None)
    territory, category = None, ""
    if form.is_valid():
        territory, category = form.cleaned_data["territory"], form.cleaned_data["category"]
    services_list = selectors.toolbox(territory=territory, category=category)
    page = Paginator(services_list, 30).get_page(request.GET.get("page"))
    query_string = request.GET.copy()
    query_string.pop("page", None)
    return render(
        request,
        "casework/toolbox.html",
        {"form": form, "page": page, "query_string": query_string.urlencode()},
    )


@require_POST
def handover_propose(request, public_id):
    case = selectors.case_get(user=request.user, public_id=public_id)
    form = HandoverForm(request.POST, memberships=selectors.handover_candidates(case))
    if not form.is_valid():
        messages.error(request, _("Choose the new referent in the list."))
        return redirect("case_detail", public_id=case.public_id)
    membership = form.cleaned_data["to_membership"]
    try:
        services.handover_propose(
            actor=request.user,
            case=case,
            to_user=membership.user,
            to_organisation=membership.organisation,
            message=form.cleaned_data["message"],
        )
    except BusinessRuleError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("%(user)s is asked to become the referent; nothing changes until they accept.")
            % {"user": membership.user},
        )
    return redirect("case_detail", public_id=case.public_id)


HANDOVER_ACTIONS = {
    "accepter": (services.handover_accept, _lazy("You are now the referent of this case.")),
    "refuser": (services.handover_decline, _lazy("You declined the handover.")),
    "annuler": (services.handover_cancel, _lazy("The handover is cancelled.")),
}


@require_POST
def handover_answer(request, public_id, action):
    case = selectors.case_get(user=request.user, public_id=public_id)
    handover = selectors.pending_handover(case)
    if action not in HANDOVER_ACTIONS or handover is None:
        messages.error(request, _("There is no handover waiting on this case any more."))
        return redirect("case_detail", public_id=case.public_id)
    service, done = HANDOVER_ACTIONS[action]
    try:
        service(actor=request.user, handover=handover)
    except BusinessRuleError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done)
    return redirect("case_detail", public_id=case.public_id)
