"""Every form fuzzed with hypothesis: random and unicode text (control characters, NUL), huge
input, HTML and script, out-of-range dates and numbers, missing fields — mixed with valid values
so that some posts go through. For each example:

- the answer is never a server error (the test client re-raises any exception of the view);
- a refused post (form shown again, error message) leaves the database exactly as it was, row for
  row, in every business table; a post that went through changed what it is meant to change (and,
  for the strict pages, nothing else);
- no markup posted comes back unescaped, neither on the answer nor on the page it redirects to;
  no redirect leaves the site.

Coverage is checked against the code: every Form class of the apps, every transition of a case,
every action of a request and every named URL must be fuzzed here or be listed, with a reason,
among the pages that take no input.

Each example runs in a transaction rolled back at its end, on a small world built once per form.
The examples are derandomized (the same ones on every run, so CI is reproducible); hypothesis
prints the failing one, draw by draw. `FUZZ_EXAMPLES=200 FUZZ_RANDOM=1 pytest tests/test_fuzz_forms.py`
explores further with fresh random examples.
"""

import importlib
import inspect
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib.messages import constants as message_levels
from django.contrib.messages import get_messages
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from hypothesis import HealthCheck, Phase, given, note, seed
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from casework import services as case_services
from casework.enums import (
    CaseOutcome,
    CaseState,
    InterventionKind,
    InterventionStatus,
    NeedStatus,
    SizeBand,
    ToolboxCategory,
)
from casework.models import Case, Membership
from cockpit import services as review_services
from notifications.models import Channel, EventType, Notification
from notifications.services import notify
from tests.factories import (
    TEST_PASSWORD,
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
    make_siret,
)
from workflows import services as request_services
from workflows import views as request_views
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.models import DeclineReason, EscalationDecision
from workflows.selectors import open_task

pytestmark = pytest.mark.django_db

hsettings.register_profile(
    "fuzz-forms",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "10")),
    deadline=None,
    # Reproducible by default, with one seed per page (test_fuzz): derandomize=True would derive
    # the seed from the test's code, so any edit of this file changed every page's examples.
    database=None,  # nothing written under the repository; derandomized runs need no replay file
    print_blob=True,
    # Shrinking 100,000-character posts takes minutes: the failing example is printed as drawn,
    # each draw labelled by its field. FUZZ_SHRINK=1 shrinks it first.
    phases=[phase for phase in Phase if os.environ.get("FUZZ_SHRINK") or phase != Phase.shrink],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
PROFILE = hsettings.get_profile("fuzz-forms")

# --- What is thrown at the forms -----------------------------------------------------------------

XSS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "</textarea><script>alert(2)</script>",
]
# Any of these in a page means posted markup came back unescaped.
UNESCAPED = re.compile(r"<script>alert|<img src=x onerror|<svg onload")
HUGE = 100_000
ODD_TEXTS = [
    "",
    "   ",
    "\x00",
    "a\x00b",
    "\x01\x02\x1b[31m",
    "\u202e\u200b\ufeff",
    "𝕏😀 é à ç",
    "\r\n\t",
    "%s %(x)s {0} {{ x }} {% now %}",
    "'; DROP TABLE casework_case; --",
    "../../etc/passwd",
]
BAD_DATES = [
    "0001-01-01",
    "9999-12-31",
    "2026-02-30",
    "2026-13-01",
    "31/12/2026",
    "2026-1-1",
    "99999-01-01",
    "-0001-01-01",
    "2026-01-01T25:00",
    "garbage",
    "",
]
BAD_NUMBERS = [
    "-1",
    "0",
    str(10**30),
    str(2**63),
    str(-(2**63) - 1),
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "1e3",
    "1.5",
    " 7 ",
    "٣",
    "²",
    "0x10",
    "1_000",
    "+5",
    "",
]


def junk_text():
    """Text nobody should type: any unicode (control characters and NUL included), markup, huge."""
    return st.one_of(
        st.text(max_size=40),
        st.sampled_from(ODD_TEXTS),
        st.sampled_from(XSS),
        st.tuples(st.text(max_size=8), st.sampled_from(XSS), st.text(max_size=8)).map("".join),
        st.characters(codec="utf-8").map(lambda char: char * HUGE),
        st.sampled_from(XSS).map(lambda payload: (payload * (HUGE // len(payload) + 1))[:HUGE]),
    )


def valid_text():
    """Text a user may type, markup included (it must be stored as typed and shown escaped)."""
    return st.one_of(
        st.sampled_from(["Recruter deux soudeurs TIG", "Réunion à 9 h — « 3 € » ok", "x"]),
        st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1, max_size=60),
        st.tuples(st.just("Besoin "), st.sampled_from(XSS)).map("".join),
    )


def junk_number():
    return st.one_of(st.sampled_from(BAD_NUMBERS), st.integers().map(str), junk_text())


def junk_date():
    return st.one_of(st.sampled_from(BAD_DATES), st.dates().map(str), junk_text())


def valid_date():
    return st.dates(date(2026, 1, 1), date(2028, 12, 31)).map(str)


def one_of_values(values):
    return st.sampled_from([str(value) for value in values])


def uuids():
    return st.uuids().map(str)


@dataclass
class F:
    """A field: what a user would send, and what nobody should."""

    valid: st.SearchStrategy
    junk: st.SearchStrategy


def choice(values):
    return F(one_of_values(values), junk_text())


def text():
    return F(valid_text(), junk_text())


def pk(*values):
    """A foreign key: the valid ids, or ids of nothing, of objects out of reach, or junk."""
    return F(one_of_values(values), st.one_of(junk_number(), one_of_values(["999999", "0"])))


def number(low, high):
    return F(st.integers(low, high).map(str), junk_number())


def a_date():
    return F(valid_date(), junk_date())


NO_FIELDS: dict[str, F] = {}
ANYTHING = None  # a saved post may change any table


@dataclass
class Target:
    """One page to fuzz: who posts, where, which fields, and what a saved post changes."""

    user: object  # None: anonymous
    url: str
    fields: dict[str, F]
    method: str = "post"
    must_change: frozenset = frozenset()  # at least one of these tables changes when saved
    may_change: frozenset | None = ANYTHING  # whatever changes must be in these tables
    saved: Callable | None = None  # response -> bool; default: a success message or a redirect
    check: Callable | None = None  # (diff, payload) -> None, extra assertions on what changed


# --- The world each form is fuzzed in -------------------------------------------------------------


@pytest.fixture
def w(site, referent, referent_organisation, animator, agent, other_referent, admin_user):
    provider = OrganisationFactory(name="Plateforme mobilité", territories=[site.territory])
    provider_agent = UserFactory(username="yann.bodin", first_name="Yann", last_name="Bodin")
    MembershipFactory(user=provider_agent, organisation=provider, can_be_referent=False)
    service = ToolboxServiceFactory(
        name="Prêt de scooters", category="mobility", provider=provider, territories=[site.territory]
    )
    colleague = UserFactory(username="colleague", first_name="Marc", last_name="Leroy")
    colleague_membership = MembershipFactory(
        user=colleague, organisation=referent_organisation, can_be_referent=True
    )
    other_case = CaseFactory(referent=other_referent)  # on another site: out of everyone's reach here
    return SimpleNamespace(
        site=site,
        referent=referent,
        referent_organisation=referent_organisation,
        animator=animator,
        agent=agent,
        provider=provider,
        provider_agent=provider_agent,
        service=service,
        colleague=colleague,
        colleague_membership=colleague_membership,
        admin=admin_user,
        foreign_need=NeedFactory(case=other_case, created_by=other_referent),
    )


def a_case(w, state, **kwargs):
    case = CaseFactory(site=w.site, referent=w.referent, state=state, **kwargs)
    if state not in (CaseState.PROPOSED, CaseState.ENROLLED):
        NeedFactory(case=case, created_by=w.referent, category="mobility")
    return case


def a_request(w, step, category="mobility"):
    """A request of a diagnosed case at `step`: "review" (waiting for the partner), "claimed",
    "accepted" (in delivery), "planned" (in delivery, one intervention planned), "validate", or
    "dispatch" (a category nobody offers: waiting for the animators)."""
    case = a_case(w, CaseState.DIAGNOSED)
    request = request_services.request_open(
        actor=w.referent, case=case, need=case.needs.get(), brief="Mobilité", category=category
    )
    if step in ("review", "dispatch"):
        return request
    request_services.task_claim(actor=w.provider_agent, task_id=_open(request, FLOW.review))
    if step == "claimed":
        return request
    request_services.request_accept(actor=w.provider_agent, task_id=_open(request, FLOW.review))
    if step == "planned":
        request_services.intervention_plan(
            actor=w.provider_agent, request=request, kind="meeting", planned_on=date(2026, 12, 3)
        )
    if step == "validate":
        request_services.request_deliver(
            actor=w.provider_agent, task_id=_open(request, FLOW.deliver), result_text="Fait"
        )
    return request


def _open(request, node):
    return open_task(request, node).pk


def case_url(url_name, case, **kwargs):
    return reverse(url_name, kwargs={"public_id": case.public_id, **kwargs})


def action_url(request, name):
    return reverse("request_action", kwargs={"public_id": request.public_id, "name": name})


# --- One builder per page that takes input ---------------------------------------------------------

TRANSITION_SETUP = {
    # name: (state of the case, who acts)
    "enrol": (CaseState.PROPOSED, "animator"),
    "refuse": (CaseState.PROPOSED, "animator"),
    "diagnose": (CaseState.ENROLLED, "referent"),
    "activate": (CaseState.DIAGNOSED, "referent"),
    "follow_up": (CaseState.ACTIVE, "referent"),
    "close": (CaseState.FOLLOW_UP, "animator"),
    "withdraw": (CaseState.ACTIVE, "referent"),
}


def transition_target(name):
    def build(w):
        state, who = TRANSITION_SETUP[name]
        case = a_case(w, state, consent=True)
        if state == CaseState.ENROLLED:
            NeedFactory(case=case, created_by=w.referent)
        return Target(
            user=getattr(w, who),
            url=case_url("case_transition", case, name=name),
            fields={
                f"{name}-expected_state": F(
                    st.just(state), st.one_of(one_of_values(CaseState.values), junk_text())
                ),
                f"{name}-reason": text(),
                f"{name}-outcome": choice(CaseOutcome.values),
            },
            must_change=frozenset({"casework.Case", "casework.CaseTransition"}),
        )

    return build


def propose(w):
    return Target(
        user=w.referent,
        url=reverse("case_propose"),
        fields={
            "site": pk(w.site.pk),
            "referent_organisation": pk(w.referent_organisation.pk),
            "siret": F(st.integers(10**6, 10**7 - 1).map(make_siret), junk_text()),
            "name": text(),
            "naf_code": F(st.sampled_from(["25.62B", "2562B", "25 62b"]), junk_text()),
            "size_band": choice(SizeBand.values),
            "address": text(),
            "postcode": F(st.sampled_from(["44150", ""]), junk_text()),
            "commune": text(),
            "territory": pk(w.site.territory_id),
            "contact_name": text(),
            "contact_email": F(st.sampled_from(["", "rh@chaudronnerie.fr"]), junk_text()),
            "contact_phone": text(),
            "summary": text(),
            "consent": F(st.sampled_from(["on", ""]), junk_text()),
        },
        must_change=frozenset({"casework.Case"}),
    )


def consent(w):
    case = a_case(w, CaseState.PROPOSED)
    return Target(
        w.referent, case_url("case_consent", case), NO_FIELDS, must_change=frozenset({"casework.Case"})
    )


def need_fields():
    return {
        "category": choice(ToolboxCategory.values),
        "description": text(),
        "quantity": number(1, 10000),
        "deadline": F(st.one_of(st.just(""), valid_date()), junk_date()),
    }


def need_create(w):
    case = a_case(w, CaseState.ENROLLED)
    return Target(
        w.referent,
        case_url("need_create", case),
        {**need_fields(), "submission_id": F(uuids(), junk_text())},
        must_change=frozenset({"casework.Need"}),
    )


def need_edit(w):
    case = a_case(w, CaseState.DIAGNOSED)
    need = case.needs.get()
    return Target(
        w.referent,
        case_url("need_edit", case, need_id=need.pk),
        {**need_fields(), "status": choice(NeedStatus.values)},
        must_change=frozenset({"casework.Need"}),
    )


def comment(w):
    case = a_case(w, CaseState.ENROLLED)
    body = F(st.one_of(valid_text(), st.just("Pouvez-vous regarder, @animator ?")), junk_text())
    return Target(
        w.referent,
        case_url("comment_add", case),
        {"body": body, "submission_id": F(uuids(), junk_text())},
        must_change=frozenset({"casework.CaseComment"}),
    )


def request_open(w):
    case = a_case(w, CaseState.DIAGNOSED)
    return Target(
        w.referent,
        reverse("request_open", kwargs={"public_id": case.public_id}),
        {
            "need": pk(case.needs.get().pk, w.foreign_need.pk),
            "service": F(one_of_values(["", w.service.pk]), junk_number()),
            "category": choice(["", *ToolboxCategory.values]),
            "brief": text(),
            "desired_date": F(st.one_of(st.just(""), valid_date()), junk_date()),
            "submission_id": F(uuids(), junk_text()),
        },
        must_change=frozenset({"workflows.ServiceRequest"}),
    )


def request_action(name, step, who, fields=lambda w, request: NO_FIELDS, must=("workflows.RequestEvent",)):
    def build(w):
        request = a_request(w, step, category="childcare" if step == "dispatch" else "mobility")
        return Target(
            getattr(w, who), action_url(request, name), fields(w, request), must_change=frozenset(must)
        )

    return build


def decline_fields(w, request):
    return {
        "decline-reason": choice(DeclineReason.values),
        "decline-reason_text": text(),
        "decline-suggested_organisation": F(
            one_of_values(["", w.referent_organisation.pk, w.provider.pk]), junk_number()
        ),
    }


def record_fields(w, request):
    intervention = request.interventions.get()
    return {
        "record-intervention": pk(intervention.pk),
        "record-status": choice([InterventionStatus.DONE, InterventionStatus.CANCELLED]),
        "record-outcome": text(),
    }


def deliver_fields(w, request):
    return {
        "deliver-candidates": number(0, 10000),
        "deliver-hires": number(0, 10000),
        "deliver-trainings": number(0, 10000),
        "deliver-result_text": text(),
    }


def escalation_raise(w):
    case = a_case(w, CaseState.ACTIVE)
    return Target(
        w.referent,
        case_url("escalation_raise", case),
        {"text": text()},
        must_change=frozenset({"workflows.Escalation"}),
    )


def escalation_decide(w):
    case = a_case(w, CaseState.ACTIVE)
    request_services.escalation_raise(actor=w.referent, case=case, text="Bloqué")
    return Target(
        w.animator,
        case_url("escalation_decide", case),
        {
            "decision": choice(EscalationDecision.values),
            "text": text(),
            "need": pk(case.needs.get().pk, w.foreign_need.pk),
            "service": pk(w.service.pk),
            "to_membership": pk(w.colleague_membership.pk),
            "outcome": choice(["", *CaseOutcome.values]),
        },
        must_change=frozenset({"workflows.Escalation"}),
    )


def handover_propose(w):
    case = a_case(w, CaseState.ENROLLED)
    foreign = Membership.objects.exclude(organisation=w.referent_organisation).first()
    return Target(
        w.referent,
        case_url("handover_propose", case),
        {"to_membership": pk(w.colleague_membership.pk, foreign.pk), "message": text()},
        must_change=frozenset({"casework.Handover"}),
    )


def handover_answer(action, who):
    def build(w):
        case = a_case(w, CaseState.ENROLLED)
        case_services.handover_propose(
            actor=w.referent, case=case, to_user=w.colleague, to_organisation=w.referent_organisation
        )
        return Target(
            getattr(w, who),
            case_url("handover_answer", case, action=action),
            NO_FIELDS,
            must_change=frozenset({"casework.Handover"}),
        )

    return build


def preferences(w):
    return Target(
        w.referent,
        reverse("notification_preferences"),
        {event: choice(Channel.values) for event in EventType.values},
        must_change=frozenset({"notifications.NotificationPreference"}),
        may_change=frozenset({"notifications.NotificationPreference"}),
    )


def mark_read(w):
    case = a_case(w, CaseState.ENROLLED)
    for user in (w.referent, w.referent, w.animator):
        notify(
            event_type="case_comment",
            recipients=[user],
            message="Test %(x)s",
            params={"x": 1},
            case=case,
        )
    own = list(Notification.objects.filter(recipient=w.referent).values_list("pk", flat=True))
    others = list(Notification.objects.exclude(recipient=w.referent).values_list("pk", flat=True))
    ids = st.lists(one_of_values([*own, *others]), max_size=4)

    def only_own(diff, payload):
        assert diff.get("notifications.Notification", set()) <= set(own), (
            "someone else's notification changed"
        )

    return Target(
        w.referent,
        reverse("notification_mark_read"),
        {
            "id": F(ids, st.lists(junk_number(), max_size=4)),
            "all": F(st.sampled_from(["1", ""]), junk_text()),
        },
        may_change=frozenset({"notifications.Notification"}),
        check=only_own,
        saved=lambda response: True,  # answered with a count; only the user's own rows may change
    )


def set_language(w):
    return Target(
        w.referent,
        reverse("set_language"),
        {
            "language": choice(["fr", "en"]),
            "next": F(
                st.sampled_from(["/", "/dossiers/", "https://evil.example/", "//evil.example/x"]),
                junk_text(),
            ),
        },
        may_change=frozenset(),
        saved=lambda response: True,
    )


def charter(w):
    return Target(
        UserFactory(charter=False),
        reverse("charter"),
        {
            "accept": F(st.just("yes"), junk_text()),
            "version": F(st.just(settings.CONFIDENTIALITY_CHARTER_VERSION), junk_text()),
            "next": F(
                st.sampled_from(["", "/dossiers/", "https://evil.example/", "//evil.example/x"]),
                junk_text(),
            ),
        },
        must_change=frozenset({"casework.CharterAcceptance"}),
    )


def login(w):
    return Target(
        None,
        reverse("login"),
        {
            "username": F(st.just(w.referent.username), junk_text()),
            "password": F(st.just(TEST_PASSWORD), junk_text()),
        },
        must_change=frozenset({"casework.User"}),  # last_login
        may_change=frozenset({"casework.User"}),
        saved=lambda response: response.status_code == 302,
    )


def case_filter(w):
    return Target(
        w.animator,
        reverse("case_list"),
        {
            "site": pk(w.site.pk),
            "state": choice(["", *CaseState.values]),
            "q": text(),
            "page": number(1, 3),
        },
        method="get",
        may_change=frozenset(),
        saved=lambda response: True,
    )


def toolbox_filter(w):
    return Target(
        w.referent,
        reverse("toolbox"),
        {
            "territory": pk(w.site.territory_id),
            "category": choice(["", *ToolboxCategory.values]),
            "page": number(1, 3),
        },
        method="get",
        may_change=frozenset(),
        saved=lambda response: True,
    )


def access_report(url_name):
    def build(w):
        return Target(
            w.admin,
            reverse(url_name),
            {
                "user": F(st.sampled_from([w.referent.username, w.referent.email, "inconnu"]), junk_text()),
                "start": a_date(),
                "end": a_date(),
                "page": number(1, 3),
            },
            method="get",
            # A report read is recorded, on the person whose displays were looked at.
            may_change=frozenset({"audit.AuditEntry"}),
            saved=lambda response: True,
        )

    return build


def board_filter(url_name, who):
    def build(w):
        a_case(w, CaseState.ENROLLED)
        url = reverse(url_name, kwargs={"slug": w.site.slug} if url_name == "board" else None)
        return Target(
            getattr(w, who),
            url,
            {
                "referent": pk(w.referent.pk, w.colleague.pk),
                "category": choice(["", *ToolboxCategory.values]),
                "overdue": F(st.sampled_from(["on", ""]), junk_text()),
            },
            method="get",
            may_change=frozenset(),
            saved=lambda response: True,
        )

    return build


def clefop_report(url_name):
    """The CLEFOP report and its exports (the form lives in cockpit/report_forms.py): a read."""

    def build(w):
        a_case(w, CaseState.ENROLLED)
        return Target(
            w.animator,
            reverse(url_name),
            {
                "site": F(st.sampled_from(["", w.site.slug]), st.one_of(junk_text(), st.just("saumur"))),
                "start": a_date(),
                "end": a_date(),
            },
            method="get",
            may_change=frozenset(),
            saved=lambda response: True,
        )

    return build


def calendar_settings(w):
    """Create, replace or revoke one's calendar link: one button, whose value names the action."""
    return Target(
        w.referent,
        reverse("calendar_settings"),
        {"action": choice(["create", "revoke"])},
        may_change=frozenset({"cockpit.CalendarFeed", "audit.AuditEntry"}),
        # A created link is shown on the page (200), once; a revocation or a refusal redirects.
        saved=lambda response: response.status_code == 302 or b"data-feed-url" in response.content,
    )


def review_schedule(w):
    """When and where the site's weekly review is held."""
    return Target(
        w.animator,
        reverse("review_schedule", kwargs={"slug": w.site.slug}),
        {
            "weekday": choice(["0", "1", "2", "3", "4"]),
            "time": F(st.sampled_from(["10:00", "14:30", "08:15"]), junk_text()),
            "duration_minutes": F(st.sampled_from(["30", "60", "90"]), junk_number()),
            "video_link": F(st.sampled_from(["", "https://visio.example.fr/revue"]), junk_text()),
        },
        must_change=frozenset({"cockpit.ReviewSchedule"}),
        may_change=frozenset({"cockpit.ReviewSchedule", "audit.AuditEntry"}),
    )


def review_entry_add(w):
    """An entry on an item of the site's open weekly review: a decision, an information, or an
    action item (owner among the referent and the animators, due within a year)."""
    a_case(w, CaseState.PROPOSED)
    weekly = review_services.review_open(actor=w.animator, site=w.site)
    item = weekly.items.get()
    prefix = f"item{item.pk}-"
    return Target(
        w.animator,
        reverse("review_entry_add", kwargs={"slug": w.site.slug, "pk": weekly.pk, "item": item.pk}),
        {
            prefix + "kind": choice(["decision", "information", "action"]),
            prefix + "text": text(),
            prefix + "owner": pk(w.referent.pk, w.animator.pk, w.agent.pk),
            prefix + "due_on": a_date(),
        },
        must_change=frozenset({"cockpit.ReviewEntry"}),
        may_change=frozenset(
            {
                "cockpit.ReviewEntry",
                "audit.AuditEntry",
                "notifications.Notification",
                "notifications.OutboxEmail",
            }
        ),
    )


# name -> (builder, Form classes it covers, URL name it covers)
SPECS = {
    "login": (login, {"LoginForm"}, "login"),
    "charter": (charter, set(), "charter"),
    "set_language": (set_language, set(), "set_language"),
    "case_propose": (propose, {"CaseProposeForm"}, "case_propose"),
    "case_consent": (consent, set(), "case_consent"),
    **{
        f"transition:{name}": (transition_target(name), {"TransitionForm"}, "case_transition")
        for name in TRANSITION_SETUP
    },
    "need_create": (need_create, {"NeedForm"}, "need_create"),
    "need_edit": (need_edit, {"NeedEditForm"}, "need_edit"),
    "comment_add": (comment, {"CommentForm"}, "comment_add"),
    "request_open": (request_open, {"RequestOpenForm"}, "request_open"),
    "action:claim": (request_action("claim", "review", "provider_agent"), set(), "request_action"),
    "action:release": (request_action("release", "claimed", "provider_agent"), set(), "request_action"),
    "action:accept": (request_action("accept", "claimed", "provider_agent"), set(), "request_action"),
    "action:decline": (
        request_action("decline", "claimed", "provider_agent", decline_fields, ("workflows.RequestDecline",)),
        {"DeclineForm"},
        "request_action",
    ),
    "action:dispatch": (
        request_action(
            "dispatch",
            "dispatch",
            "animator",
            lambda w, request: {"dispatch-provider": pk(w.provider.pk, w.referent_organisation.pk)},
        ),
        {"DispatchForm"},
        "request_action",
    ),
    "action:plan": (
        request_action(
            "plan",
            "accepted",
            "provider_agent",
            lambda w, request: {
                "plan-kind": choice(InterventionKind.values),
                "plan-planned_on": a_date(),
                "plan-notes": text(),
            },
            ("casework.Intervention",),
        ),
        {"InterventionPlanForm"},
        "request_action",
    ),
    "action:record": (
        request_action("record", "planned", "provider_agent", record_fields, ("casework.Intervention",)),
        {"InterventionRecordForm"},
        "request_action",
    ),
    "action:deliver": (
        request_action(
            "deliver", "accepted", "provider_agent", deliver_fields, ("workflows.ServiceRequest",)
        ),
        {"DeliverForm"},
        "request_action",
    ),
    **{
        f"action:{name}": (
            request_action(name, "validate", "referent", lambda w, request: {"validate-comment": text()}),
            {"ValidateForm"},
            "request_action",
        )
        for name in ("validate", "send_back")
    },
    "action:cancel": (
        request_action("cancel", "review", "referent", lambda w, request: {"cancel-reason": text()}),
        {"CancelForm"},
        "request_action",
    ),
    "escalation_raise": (escalation_raise, {"EscalationForm"}, "escalation_raise"),
    "escalation_decide": (escalation_decide, {"EscalationDecisionForm"}, "escalation_decide"),
    "handover_propose": (handover_propose, {"HandoverForm"}, "handover_propose"),
    "handover:accepter": (handover_answer("accepter", "colleague"), set(), "handover_answer"),
    "handover:refuser": (handover_answer("refuser", "colleague"), set(), "handover_answer"),
    "handover:annuler": (handover_answer("annuler", "referent"), set(), "handover_answer"),
    "notification_preferences": (preferences, set(), "notification_preferences"),
    "notification_mark_read": (mark_read, set(), "notification_mark_read"),
    "case_filter": (case_filter, {"CaseFilterForm"}, "case_list"),
    "toolbox_filter": (toolbox_filter, {"ToolboxFilterForm"}, "toolbox"),
    "board_filter": (board_filter("board", "animator"), {"BoardFilterForm"}, "board"),
    "board_region_filter": (board_filter("board_region", "admin"), set(), "board_region"),
    "access_report": (access_report("audit_access_report"), {"AccessReportForm"}, "audit_access_report"),
    "access_report_csv": (access_report("audit_access_report_csv"), set(), "audit_access_report_csv"),
    **{
        name: (clefop_report(name), {"ReportForm"} if name == "clefop_report" else set(), name)
        for name in ("clefop_report", "clefop_report_xlsx", "clefop_report_csv")
    },
    "calendar_settings": (calendar_settings, set(), "calendar_settings"),
    "review_schedule": (review_schedule, {"ReviewScheduleForm"}, "review_schedule"),
    "review_entry_add": (review_entry_add, {"ReviewEntryForm"}, "review_entry_add"),
}

# Named URLs that take no user input beyond their address (or are not ours), with the reason.
NOT_FUZZED_URLS = {
    "home": "GET page without parameters",
    "case_detail": "GET page without parameters (fuzzed pages redirect to it and it is read then)",
    "company_detail": "GET page without parameters",
    "case_history": "GET page whose only parameter `avant` is a keyset cursor, refused when damaged "
    "(tests/test_views.py::test_a_damaged_link_of_the_case_history_gives_its_first_page)",
    "request_detail": "GET page without parameters (read after every request action)",
    "task_list": "GET page: `vue` and `page` are looked up in fixed tables / the paginator",
    "notification_list": "GET page: `filtre` compared to one value, `page` through the paginator",
    "logout": "POST without fields",
    "admin:index": "Django's admin, platform administrators only",
    "admin_login_redirect": "redirect to the login page",
    "calendar_feed": "GET of a secret token in the path, looked up by its hash (tests/test_calendar.py)",
    "review_agenda": "GET page without parameters (the site is in the path, as for the board)",
    "review_list": "GET page without parameters (the site is in the path)",
    "review_detail": "GET page without parameters (read after every entry fuzzed)",
    "review_open": "POST without fields (tests/test_review_meeting.py)",
    "review_close": "POST without fields (tests/test_review_meeting.py)",
    "action_done": "POST whose only field `review` (where to go back) is looked up among the reviews of the "
    "user's sites (tests/test_review_meeting.py)",
}
# Form classes that are not forms of a page.
NOT_FUZZED_FORMS = {"DsfrModelForm": "base class of the model forms, no fields of its own"}


def _form_modules():
    """The forms modules of every app of the project (a new app's forms are found too)."""
    for config in _project_apps():
        for filename in sorted(os.listdir(config.path)):
            if filename.endswith("forms.py") or filename.startswith("forms_"):
                yield f"{config.name}.{filename[:-3]}"


# --- Coverage, generated from the code ------------------------------------------------------------


def _form_classes():
    found = set()
    for module_name in _form_modules():
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, forms.BaseForm) and obj.__module__ == module_name:
                found.add(name)
    return found


def _named_urls(resolver=None, namespace=""):
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                yield "admin:index"
                continue
            yield from _named_urls(
                pattern, f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            )
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}{pattern.name}"


def test_every_form_is_fuzzed():
    covered = set().union(*(forms_ for _, forms_, _ in SPECS.values()))
    missing = _form_classes() - covered - set(NOT_FUZZED_FORMS)
    assert not missing, f"Form classes not fuzzed in tests/test_fuzz_forms.py: {sorted(missing)}"
    assert covered <= _form_classes(), (
        f"fuzz specs name forms that no longer exist: {covered - _form_classes()}"
    )


def test_every_page_taking_input_is_fuzzed():
    named = set(_named_urls())
    covered = {url for _, _, url in SPECS.values()}
    missing = named - covered - set(NOT_FUZZED_URLS)
    assert not missing, f"URLs neither fuzzed nor listed in NOT_FUZZED_URLS: {sorted(missing)}"
    assert (covered | set(NOT_FUZZED_URLS)) <= named, "the fuzz names URLs that no longer exist"


def test_every_case_transition_and_request_action_is_fuzzed():
    transitions = {t.name for t in Case._meta.get_field("state").get_all_transitions(Case)}
    assert transitions == set(TRANSITION_SETUP)
    # The actions request_action dispatches on, read from its source: a new one must be fuzzed.
    source = inspect.getsource(request_views._run)
    actions = set(re.findall(r'name == "(\w+)"', source))
    for group in re.findall(r"name in \(([^)]*)\)", source):
        actions |= set(re.findall(r'"(\w+)"', group))
    assert actions == {name.split(":", 1)[1] for name in SPECS if name.startswith("action:")}


# --- The fuzzing itself -----------------------------------------------------------------------------


def _project_apps():
    root = str(settings.BASE_DIR)
    return [
        config
        for config in apps.get_app_configs()
        if config.path.startswith(root) and ".venv" not in config.path
    ]


def snapshot():
    """Every row of every business table, by table and primary key: the models of the project's
    apps (a new app's too) and viewflow's processes and tasks. Not the sessions nor django-axes'
    records of sign-in attempts."""
    rows = {}
    for config in [*_project_apps(), apps.get_app_config("viewflow")]:
        for model in config.get_models():
            columns = [f.attname for f in model._meta.concrete_fields]
            rows[model._meta.label] = {
                row[0]: row for row in model._base_manager.order_by("pk").values_list("pk", *columns)
            }
    return rows


def diff(before, after):
    """Table -> primary keys of the rows added, removed or changed."""
    changed = {}
    for table, old in before.items():
        new = after[table]
        keys = {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
        if keys:
            changed[table] = keys
    return changed


def draw_payload(data, fields):
    mode = data.draw(st.sampled_from(["valid", "mixed", "junk"]), label="mode")
    payload = {}
    for name, spec in fields.items():
        kind = (
            "valid"
            if mode == "valid"
            else data.draw(
                st.sampled_from(["valid", "junk", "missing"] if mode == "mixed" else ["junk", "missing"]),
                label=f"{name}?",
            )
        )
        if kind != "missing":
            payload[name] = data.draw(spec.valid if kind == "valid" else spec.junk, label=name)
    if data.draw(st.booleans(), label="extra field?"):
        payload[data.draw(st.text(min_size=1, max_size=10), label="extra name")] = data.draw(
            junk_text(), label="extra"
        )
    return payload


def default_saved(response):
    levels = {message.level for message in get_messages(response.wsgi_request)}
    if message_levels.ERROR in levels or response.status_code != 302:
        return False
    return True


def assert_safe_page(response):
    assert response.status_code < 500
    if response.status_code in (301, 302, 303):
        location = urlsplit(response["Location"])
        assert location.netloc in ("", "testserver"), f"redirect off the site: {response['Location']}"
    if "html" in response.get("Content-Type", "") and not response.streaming:
        page = response.content.decode(errors="replace")
        found = UNESCAPED.search(page)
        assert found is None, (
            f"unescaped markup in the page: …{page[max(found.start() - 80, 0) : found.end() + 80]}…"
        )


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_fuzz(spec_name, w):
    build, _forms, _url = SPECS[spec_name]
    target = build(w)
    client = Client()
    if target.user is not None:
        client.force_login(target.user)
    outcomes = {"saved": 0, "refused": 0}

    @hsettings(PROFILE)
    @given(data=st.data())
    def fuzz(data):
        payload = draw_payload(data, target.fields)
        with transaction.atomic():
            client.cookies.pop("messages", None)
            before = snapshot()
            send = client.get if target.method == "get" else client.post
            response = send(target.url, payload)
            assert_safe_page(response)
            changed = diff(before, snapshot())
            saved = (target.saved or default_saved)(response)
            rows = {table: sorted(keys) for table, keys in changed.items()}
            note(f"status {response.status_code}, saved={saved}, rows changed: {rows}")
            if not saved:
                assert not changed, f"refused, yet rows changed: {changed}"
            else:
                if target.must_change:
                    assert target.must_change & changed.keys(), (
                        f"reported saved, but {sorted(target.must_change)} unchanged"
                    )
                if target.may_change is not ANYTHING:
                    assert changed.keys() <= target.may_change, f"unexpected changes: {changed}"
            if target.check:
                target.check(changed, payload)
            outcomes["saved" if saved and changed else "refused"] += 1
            if response.status_code == 302 and response["Location"].startswith("/"):
                assert_safe_page(client.get(response["Location"]))  # where the user lands, with the message
            transaction.set_rollback(True)

    if not os.environ.get("FUZZ_RANDOM"):
        fuzz = seed(zlib.crc32(spec_name.encode()))(fuzz)
    fuzz()
    # The fuzz reached both sides: the examples include posts that went through and posts refused.
    if target.must_change:
        assert outcomes["saved"], outcomes
    if target.fields and target.must_change:
        assert outcomes["refused"], outcomes


# --- What the fuzz found, and proof that its checks can fail ------------------------------------------


def test_marking_read_ignores_ids_that_are_digits_only_for_unicode(client, w):
    """Found by the fuzz: "²".isdigit() is true, int("²") fails: the inbox answered 500."""
    client.force_login(w.referent)
    response = client.post(reverse("notification_mark_read"), {"id": ["²", "①", "9" * 40, "٣"]})
    assert response.status_code == 302


def test_posted_markup_is_shown_escaped_where_the_fuzz_looks_for_it(client, w):
    """The checks of the fuzz see the echo: a refused comment is shown again with its text, escaped,
    and a saved one on the case page, escaped too."""
    case = a_case(w, CaseState.ENROLLED)
    client.force_login(w.referent)
    url = case_url("comment_add", case)
    refused = client.post(url, {"body": f"{XSS[0]} @personne-inconnue"})
    assert refused.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in refused.content.decode()
    assert UNESCAPED.search(refused.content.decode()) is None
    client.post(url, {"body": f"Voir {XSS[1]}"})
    page = client.get(case_url("case_detail", case)).content.decode()
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert UNESCAPED.search(page) is None


def test_a_refused_post_is_seen_as_refused_and_a_saved_one_as_saved(client, w):
    """The verdict the fuzz relies on, on both sides, with the rows it compares."""
    case = a_case(w, CaseState.ENROLLED)
    client.force_login(w.referent)
    url = case_url("need_create", case)
    before = snapshot()
    refused = client.post(url, {"category": "recruitment", "description": "x", "quantity": "1e309"})
    assert not default_saved(refused) and diff(before, snapshot()) == {}
    saved = client.post(url, {"category": "recruitment", "description": "Deux soudeurs", "quantity": "2"})
    assert default_saved(saved)
    assert set(diff(before, snapshot())) >= {"casework.Need", "audit.AuditEntry"}


@pytest.mark.parametrize(
    ("spec_name", "field_name"),
    [
        ("comment_add", "body"),
        ("need_create", "description"),
        ("request_open", "brief"),
        ("case_propose", "name"),
    ],
)
def test_nul_bytes_are_refused_by_the_form_before_the_database(spec_name, field_name, w):
    """PostgreSQL refuses NUL in text (it would be a 500): Django's CharField refuses it first, with
    a message on the field, on every database."""
    target = SPECS[spec_name][0](w)
    client = Client()
    client.force_login(target.user)
    response = client.post(target.url, {field_name: "avant\x00après"})
    assert response.status_code == 200
    form = response.context.get("form") or response.context["comment_form"]
    assert form.has_error(field_name, code="null_characters_not_allowed")


def test_a_sign_in_with_an_overlong_name_is_refused_by_the_form(client, w):
    """Found by the fuzz on PostgreSQL: the name went to authenticate() unchecked and django-axes'
    record of the failed attempt overflowed its 255-character column (a 500)."""
    response = client.post(reverse("login"), {"username": "x" * 300, "password": "y"})
    assert response.status_code == 200
    assert response.context["form"].has_error("username", code="max_length")
