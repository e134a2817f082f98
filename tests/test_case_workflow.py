"""The life of a case through `casework.services`: proposal, consent, state machine, needs.

Each refused action must leave the database exactly as it was (state, fields, transition log).
"""

import datetime
import re

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone, translation

from casework import rules, services
from casework.enums import CaseOutcome, CaseState, NeedStatus, SizeBand, ToolboxCategory
from casework.exceptions import BusinessRuleError, NotAllowedError, StaleStateError
from casework.models import Case, CaseTransition, Company, CompanyContact, Need
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    SiteAnimatorFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

S = CaseState
OPEN_STATES = [S.PROPOSED, S.ENROLLED, S.DIAGNOSED, S.ACTIVE, S.FOLLOW_UP]


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def other_animator(other_site):
    """The animator of `other_site`."""
    return SiteAnimatorFactory(site=other_site).user


@pytest.fixture
def consented_case(site, referent):
    """A proposed case of `referent` on `site` whose consent is recorded: ready to be enrolled."""
    return CaseFactory(site=site, referent=referent, consent=True)


def make_case(site, referent, state, **kwargs):
    """A case of `referent` on `site` in `state`, with an open need once it is past enrolment."""
    case = CaseFactory(site=site, referent=referent, state=state, **kwargs)
    if state in (S.DIAGNOSED, S.ACTIVE, S.FOLLOW_UP):
        NeedFactory(case=case)
    return case


def apply(case, actor, name, *, expected_state=None, reason="", outcome=""):
    return services.case_transition(
        actor=actor,
        case=case,
        name=name,
        expected_state=expected_state if expected_state is not None else case.state,
        reason=reason,
        outcome=outcome,
    )


def snapshot(case):
    """What a refused action must not change."""
    row = Case.objects.values(
        "state", "decision_reason", "outcome", "enrolled_at", "closed_at", "last_activity_at", "referent_id"
    ).get(pk=case.pk)
    return row, list(CaseTransition.objects.filter(case_id=case.pk).values_list("pk", flat=True))


def refused(case, actor, name, exception=BusinessRuleError, **kwargs) -> str:
    """Apply a transition that must fail with `exception`; check nothing changed; return the message."""
    before = snapshot(case)
    with pytest.raises(exception) as info:
        apply(case, actor, name, **kwargs)
    assert snapshot(case) == before
    return info.value.message


def last_transition(case) -> CaseTransition:
    return CaseTransition.objects.filter(case_id=case.pk).latest("at", "id")


# --- Each transition, with the right actor ----------------------------------------------------------


def test_enrol_by_the_site_animator(consented_case, animator):
    Case.objects.filter(pk=consented_case.pk).update(
        last_activity_at=timezone.now() - datetime.timedelta(days=5)
    )
    before = timezone.now()

    returned = apply(consented_case, animator, "enrol", expected_state=S.PROPOSED, reason="Validé en comité")

    case = Case.objects.get(pk=consented_case.pk)
    assert returned.state == case.state == S.ENROLLED
    assert case.enrolled_at >= before
    assert case.last_activity_at >= before
    row = CaseTransition.objects.get(case=case)
    assert (row.name, row.source, row.target, row.actor, row.comment) == (
        "enrol",
        S.PROPOSED,
        S.ENROLLED,
        animator,
        "Validé en comité",
    )


def test_refuse_by_the_site_animator_records_the_reason(case, animator):
    apply(case, animator, "refuse", reason="  Entreprise hors du périmètre du site.  ")

    case.refresh_from_db()
    assert case.state == S.REFUSED
    assert case.decision_reason == "Entreprise hors du périmètre du site."
    assert case.closed_at is not None
    row = CaseTransition.objects.get(case=case)
    assert (row.name, row.source, row.target, row.actor, row.comment) == (
        "refuse",
        S.PROPOSED,
        S.REFUSED,
        animator,
        "Entreprise hors du périmètre du site.",
    )


def test_diagnose_by_the_referent_once_a_need_is_recorded(site, referent):
    case = CaseFactory(site=site, referent=referent, enrolled=True)
    NeedFactory(case=case)

    apply(case, referent, "diagnose")

    case.refresh_from_db()
    assert case.state == S.DIAGNOSED
    row = CaseTransition.objects.get(case=case)
    assert (row.name, row.source, row.target, row.actor) == ("diagnose", S.ENROLLED, S.DIAGNOSED, referent)


def test_activate_by_the_referent_with_an_open_need(site, referent):
    case = CaseFactory(site=site, referent=referent, diagnosed=True)
    NeedFactory(case=case, status=NeedStatus.IN_PROGRESS)

    apply(case, referent, "activate")

    case.refresh_from_db()
    assert case.state == S.ACTIVE
    row = CaseTransition.objects.get(case=case)
    assert (row.name, row.source, row.target, row.actor) == ("activate", S.DIAGNOSED, S.ACTIVE, referent)


def test_follow_up_by_the_referent(site, referent):
    case = make_case(site, referent, S.ACTIVE)

    apply(case, referent, "follow_up")

    case.refresh_from_db()
    assert case.state == S.FOLLOW_UP
    row = CaseTransition.objects.get(case=case)
    assert (row.name, row.source, row.target, row.actor) == ("follow_up", S.ACTIVE, S.FOLLOW_UP, referent)


@pytest.mark.parametrize("source", [S.ACTIVE, S.FOLLOW_UP])
@pytest.mark.parametrize("actor_name", ["referent", "animator"])
def test_close_with_an_outcome(request, site, referent, source, actor_name):
    actor = request.getfixturevalue(actor_name)
    case = make_case(site, referent, source)

    apply(case, actor, "close", outcome=CaseOutcome.PARTLY_MET)

    case.refresh_from_db()
    assert case.state == S.CLOSED
    assert case.outcome == CaseOutcome.PARTLY_MET
    assert case.closed_at is not None
    row = CaseTransition.objects.get(case=case)
    assert (row.name, row.source, row.target, row.actor) == ("close", source, S.CLOSED, actor)


@pytest.mark.parametrize("source", OPEN_STATES)
@pytest.mark.parametrize("actor_name", ["referent", "animator"])
def test_withdraw_from_every_open_state(request, site, referent, source, actor_name):
    actor = request.getfixturevalue(actor_name)
    case = make_case(site, referent, source)

    apply(case, actor, "withdraw", reason="L'entreprise a recruté par elle-même.")

    case.refresh_from_db()
    assert case.state == S.WITHDRAWN
    assert case.decision_reason == "L'entreprise a recruté par elle-même."
    assert case.closed_at is not None
    row = CaseTransition.objects.get(case=case)
    assert (row.name, row.source, row.target, row.actor, row.comment) == (
        "withdraw",
        source,
        S.WITHDRAWN,
        actor,
        "L'entreprise a recruté par elle-même.",
    )


def test_whole_journey_is_logged_in_order(site, referent, referent_organisation, animator):
    case = services.case_propose(
        actor=referent,
        site=site,
        referent_organisation=referent_organisation,
        company=company_data(site.territory),
        consent=False,
    )
    services.case_record_consent(actor=referent, case=case)
    apply(case, animator, "enrol", expected_state=S.PROPOSED)
    services.need_create(
        actor=referent, case=case, category=ToolboxCategory.TRAINING, description="Former 3 caristes"
    )
    apply(case, referent, "diagnose", expected_state=S.ENROLLED)
    apply(case, referent, "activate", expected_state=S.DIAGNOSED)
    apply(case, referent, "follow_up", expected_state=S.ACTIVE)
    apply(case, animator, "close", expected_state=S.FOLLOW_UP, outcome=CaseOutcome.NEEDS_MET)

    case.refresh_from_db()
    assert case.state == S.CLOSED
    log = list(case.transitions.values_list("name", "source", "target"))
    assert log == [
        ("propose", "", S.PROPOSED),
        ("enrol", S.PROPOSED, S.ENROLLED),
        ("diagnose", S.ENROLLED, S.DIAGNOSED),
        ("activate", S.DIAGNOSED, S.ACTIVE),
        ("follow_up", S.ACTIVE, S.FOLLOW_UP),
        ("close", S.FOLLOW_UP, S.CLOSED),
    ]


# --- Who may trigger what --------------------------------------------------------------------------


@pytest.mark.parametrize("actor_name", ["referent", "other_animator", "other_referent", "agent", "observer"])
@pytest.mark.parametrize("name", ["enrol", "refuse"])
def test_only_the_site_animators_decide_the_enrolment(request, consented_case, actor_name, name):
    actor = request.getfixturevalue(actor_name)
    refused(consented_case, actor, name, NotAllowedError, reason="Motif")


def test_an_inactive_animator_cannot_enrol(consented_case, animator):
    animator.is_active = False
    animator.save()
    refused(consented_case, animator, "enrol", NotAllowedError)


@pytest.mark.parametrize(
    "source, name",
    [(S.ENROLLED, "diagnose"), (S.DIAGNOSED, "activate"), (S.ACTIVE, "follow_up")],
)
@pytest.mark.parametrize("actor_name", ["animator", "other_referent", "agent", "admin_user"])
def test_only_the_referent_moves_the_support_forward(request, site, referent, source, name, actor_name):
    case = make_case(site, referent, source)
    refused(case, request.getfixturevalue(actor_name), name, NotAllowedError)


@pytest.mark.parametrize("name", ["close", "withdraw"])
@pytest.mark.parametrize("actor_name", ["other_referent", "other_animator", "agent", "observer"])
def test_only_the_referent_or_an_animator_closes_or_withdraws(request, site, referent, name, actor_name):
    case = make_case(site, referent, S.ACTIVE)
    refused(
        case, request.getfixturevalue(actor_name), name, NotAllowedError, reason="Motif", outcome="needs_met"
    )


def test_a_colleague_of_the_referent_cannot_act_on_the_case(site, referent, referent_organisation):
    colleague = UserFactory()
    MembershipFactory(user=colleague, organisation=referent_organisation)
    case = make_case(site, referent, S.ACTIVE)
    refused(case, colleague, "follow_up", NotAllowedError)


# --- Conditions of the transitions -----------------------------------------------------------------


def test_enrol_without_consent_is_refused_and_says_why(case, animator):
    message = refused(case, animator, "enrol", BusinessRuleError)
    assert "consent" in message.lower()


def test_enrol_without_consent_is_a_business_rule_not_a_permission_problem(case, animator):
    # The animator has the right to enrol; what is missing is the consent. The interface shows a
    # NotAllowedError as "you may not do this", which would hide the actual reason.
    with pytest.raises(BusinessRuleError) as info:
        apply(case, animator, "enrol")
    assert not isinstance(info.value, NotAllowedError)


def test_enrol_above_the_site_cap_is_refused_with_a_message_naming_the_cap(
    site, referent, consented_case, animator
):
    site.enrolment_cap = 2
    site.save()
    CaseFactory(site=site, enrolled=True)
    CaseFactory(site=site, referent=referent, active=True)

    message = refused(consented_case, animator, "enrol", BusinessRuleError)
    assert re.search(r"\b2\b", message), message
    assert site.name in message


@pytest.mark.parametrize("occupying", [S.ENROLLED, S.DIAGNOSED, S.ACTIVE, S.FOLLOW_UP])
def test_every_enrolled_state_takes_a_place(site, consented_case, animator, occupying):
    site.enrolment_cap = 1
    site.save()
    CaseFactory(site=site, state=occupying)

    with pytest.raises(BusinessRuleError):
        apply(consented_case, animator, "enrol")
    assert Case.objects.get(pk=consented_case.pk).state == S.PROPOSED


def test_the_cap_counts_only_the_cases_occupying_a_place_on_this_site(
    site, other_site, consented_case, animator
):
    site.enrolment_cap = 2
    site.save()
    CaseFactory(site=site, enrolled=True)
    for state in (S.PROPOSED, S.CLOSED, S.REFUSED, S.WITHDRAWN):
        CaseFactory(site=site, state=state)
        CaseFactory(site=site, state=state)
    CaseFactory(site=other_site, active=True)
    CaseFactory(site=other_site, active=True)

    apply(consented_case, animator, "enrol")
    assert Case.objects.get(pk=consented_case.pk).state == S.ENROLLED

    # Now both places are taken: the next one is refused.
    third = CaseFactory(site=site, consent=True)
    with pytest.raises(BusinessRuleError):
        apply(third, animator, "enrol")


@pytest.mark.parametrize("reason", ["", "   "])
@pytest.mark.parametrize(
    "name, source, actor_name", [("refuse", S.PROPOSED, "animator"), ("withdraw", S.ACTIVE, "referent")]
)
def test_refuse_and_withdraw_need_a_reason(request, site, referent, reason, name, source, actor_name):
    case = make_case(site, referent, source)
    refused(case, request.getfixturevalue(actor_name), name, BusinessRuleError, reason=reason)


@pytest.mark.parametrize("outcome", ["", "bogus"])
def test_close_needs_a_known_outcome(site, referent, outcome):
    case = make_case(site, referent, S.FOLLOW_UP)
    refused(case, referent, "close", BusinessRuleError, outcome=outcome)


def test_diagnose_without_any_need_is_refused_and_says_why(site, referent):
    case = CaseFactory(site=site, referent=referent, enrolled=True)
    message = refused(case, referent, "diagnose", BusinessRuleError)
    assert "need" in message.lower()


def test_diagnose_without_need_is_a_business_rule_not_a_permission_problem(site, referent):
    case = CaseFactory(site=site, referent=referent, enrolled=True)
    with pytest.raises(BusinessRuleError) as info:
        apply(case, referent, "diagnose")
    assert not isinstance(info.value, NotAllowedError)


def test_activate_needs_an_open_need(site, referent):
    case = CaseFactory(site=site, referent=referent, diagnosed=True)
    NeedFactory(case=case, status=NeedStatus.MET)
    NeedFactory(case=case, status=NeedStatus.ABANDONED)
    message = refused(case, referent, "activate", BusinessRuleError)
    assert "need" in message.lower()


# --- Stale pages, impossible and unknown actions ---------------------------------------------------


def test_stale_expected_state_is_refused(site, referent, animator):
    case = CaseFactory(site=site, referent=referent, enrolled=True)
    refused(case, animator, "withdraw", StaleStateError, expected_state=S.PROPOSED, reason="Motif")


def test_double_submit_applies_the_transition_once(consented_case, animator):
    apply(consented_case, animator, "enrol", expected_state=S.PROPOSED)
    # The second click of the same form, on the stale in-memory object.
    with pytest.raises(StaleStateError):
        apply(consented_case, animator, "enrol", expected_state=S.PROPOSED)

    assert Case.objects.get(pk=consented_case.pk).state == S.ENROLLED
    assert CaseTransition.objects.filter(case=consented_case).count() == 1


@pytest.mark.parametrize(
    "state, name, actor_name",
    [
        (S.PROPOSED, "diagnose", "referent"),
        (S.PROPOSED, "close", "referent"),
        (S.ENROLLED, "enrol", "animator"),
        (S.ENROLLED, "activate", "referent"),
        (S.ENROLLED, "refuse", "animator"),
        (S.CLOSED, "withdraw", "referent"),
        (S.CLOSED, "close", "animator"),
        (S.REFUSED, "enrol", "animator"),
        (S.WITHDRAWN, "withdraw", "animator"),
    ],
)
def test_transition_not_possible_from_the_current_state(request, site, referent, state, name, actor_name):
    case = make_case(site, referent, state)
    refused(
        case,
        request.getfixturevalue(actor_name),
        name,
        BusinessRuleError,
        reason="Motif",
        outcome=CaseOutcome.NEEDS_MET,
    )


@pytest.mark.parametrize("name", ["delete", "save", "refresh_from_db", "propose", "", "ENROL"])
def test_unknown_transition_name_is_refused(consented_case, animator, name):
    refused(consented_case, animator, name, NotAllowedError)


def test_transition_options_follow_rights_and_explain_blocked_conditions(
    site, referent, case, consented_case, animator, agent
):
    """What the case page offers: the transitions the user is entitled to, each with why it is
    blocked now ("" when it can be done)."""

    def options(c, user):
        return {t.name: blocker for t, blocker in rules.case_transition_options(c, user)}

    assert options(consented_case, animator) == {"enrol": "", "refuse": "", "withdraw": ""}
    assert options(consented_case, referent) == {"withdraw": ""}
    assert options(consented_case, agent) == {}

    no_consent = options(case, animator)
    assert set(no_consent) == {"enrol", "refuse", "withdraw"}
    assert "consent" in no_consent["enrol"].lower()
    assert no_consent["refuse"] == no_consent["withdraw"] == ""

    enrolled = CaseFactory(site=site, referent=referent, enrolled=True)
    assert options(enrolled, animator) == {"withdraw": ""}
    referent_options = options(enrolled, referent)
    assert set(referent_options) == {"diagnose", "withdraw"}
    assert "need" in referent_options["diagnose"].lower()


# --- Consent ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("actor_name", ["referent", "animator"])
def test_record_consent(request, case, actor_name):
    actor = request.getfixturevalue(actor_name)
    before = timezone.now()

    services.case_record_consent(actor=actor, case=case)

    case.refresh_from_db()
    assert case.has_consent
    assert before <= case.consent_recorded_at <= timezone.now()
    assert case.consent_recorded_by == actor
    assert case.consent_text_version == settings.COMPANY_CONSENT_TEXT_VERSION
    assert case.last_activity_at >= before


def test_consent_cannot_be_recorded_twice(case, referent, animator):
    services.case_record_consent(actor=referent, case=case)
    first = Case.objects.values("consent_recorded_at", "consent_recorded_by").get(pk=case.pk)

    with pytest.raises(BusinessRuleError):
        services.case_record_consent(actor=animator, case=case)
    assert Case.objects.values("consent_recorded_at", "consent_recorded_by").get(pk=case.pk) == first


@pytest.mark.parametrize("actor_name", ["other_referent", "other_animator", "agent", "observer"])
def test_consent_is_recorded_by_the_referent_or_an_animator_only(request, case, actor_name):
    with pytest.raises(NotAllowedError):
        services.case_record_consent(actor=request.getfixturevalue(actor_name), case=case)
    assert not Case.objects.get(pk=case.pk).has_consent


def test_consent_cannot_be_recorded_on_a_closed_case(site, referent):
    case = CaseFactory(site=site, referent=referent, refused=True)
    with pytest.raises(NotAllowedError):
        services.case_record_consent(actor=referent, case=case)


def test_recorded_consent_unlocks_the_enrolment(case, referent, animator):
    with pytest.raises(BusinessRuleError):
        apply(case, animator, "enrol")
    services.case_record_consent(actor=referent, case=case)
    apply(case, animator, "enrol")
    assert Case.objects.get(pk=case.pk).state == S.ENROLLED


# --- Proposal ("first met" rule) -------------------------------------------------------------------


def company_data(territory, **overrides) -> services.CompanyData:
    values = {
        "siret": "732 829 320 00074",
        "name": "  Chaudronnerie Ligérienne ",
        "naf_code": "2562b",
        "size_band": SizeBand.B20_49,
        "commune": "Ancenis-Saint-Géréon",
        "territory_id": territory.pk,
        "address": "1 rue du Port",
        "postcode": "44150",
        "contact_name": "Jeanne Leroy",
        "contact_email": "jeanne.leroy@example.org",
        "contact_phone": "02 40 00 00 00",
    }
    values.update(overrides)
    return services.CompanyData(**values)


def counts():
    return {
        model.__name__: model.objects.count() for model in (Company, Case, CompanyContact, CaseTransition)
    }


def propose(actor, site, organisation, data, consent=True, summary=""):
    return services.case_propose(
        actor=actor,
        site=site,
        referent_organisation=organisation,
        company=data,
        consent=consent,
        summary=summary,
    )


def test_propose_with_consent(site, referent, referent_organisation):
    before = timezone.now()
    case = propose(referent, site, referent_organisation, company_data(site.territory), summary=" Soudeurs ")

    case = Case.objects.select_related("company").get(pk=case.pk)
    assert case.state == S.PROPOSED
    assert case.site == site
    assert (case.referent, case.referent_organisation, case.created_by) == (
        referent,
        referent_organisation,
        referent,
    )
    assert case.summary == "Soudeurs"
    assert case.consent_recorded_at >= before
    assert case.consent_recorded_by == referent
    assert case.consent_text_version == settings.COMPANY_CONSENT_TEXT_VERSION

    company = case.company
    assert company.siret == "73282932000074"
    assert company.naf_code == "25.62B"
    assert company.name == "Chaudronnerie Ligérienne"
    assert company.territory == site.territory
    assert company.created_by == referent

    contact = CompanyContact.objects.get(company=company)
    assert (contact.full_name, contact.email, contact.phone) == (
        "Jeanne Leroy",
        "jeanne.leroy@example.org",
        "02 40 00 00 00",
    )
    row = CaseTransition.objects.get(case=case)
    assert (row.name, row.source, row.target, row.actor) == ("propose", "", S.PROPOSED, referent)


def test_propose_without_consent_and_without_contact(site, referent, referent_organisation):
    case = propose(
        referent, site, referent_organisation, company_data(site.territory, contact_name=" "), consent=False
    )

    case.refresh_from_db()
    assert case.state == S.PROPOSED
    assert not case.has_consent
    assert case.consent_recorded_by is None
    assert case.consent_text_version == ""
    assert not CompanyContact.objects.exists()
    assert CaseTransition.objects.filter(case=case, name="propose").count() == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"siret": "73282932000075"},
        {"siret": "7328293200007"},
        {"siret": "ABCDEFGHIJKLMN"},
        {"naf_code": "256B"},
        {"naf_code": "AB.CDE"},
        {"contact_email": "not-an-e-mail"},
        {"size_band": "99"},
        {"name": "   "},
    ],
)
def test_propose_with_invalid_company_data_saves_nothing(site, referent, referent_organisation, overrides):
    before = counts()
    with pytest.raises(BusinessRuleError):
        propose(referent, site, referent_organisation, company_data(site.territory, **overrides))
    assert counts() == before


def test_second_open_case_names_the_existing_referent_and_saves_nothing(
    site, referent, referent_organisation
):
    propose(referent, site, referent_organisation, company_data(site.territory))
    newcomer_org = OrganisationFactory(name="Mission locale du Pays d'Ancenis", territories=[site.territory])
    newcomer = UserFactory()
    MembershipFactory(user=newcomer, organisation=newcomer_org)
    before = counts()

    with pytest.raises(BusinessRuleError) as info:
        propose(
            newcomer,
            site,
            newcomer_org,
            company_data(site.territory, siret="73282932000074", name="Autre nom"),
        )

    assert "Claire Durand" in info.value.message
    assert "France Travail Ancenis" in info.value.message
    assert counts() == before
    assert Case.objects.get().referent == referent


def test_existing_open_case_in_any_open_state_blocks_a_new_proposal(site, referent, referent_organisation):
    existing = CaseFactory(site=site, active=True)
    before = counts()
    with pytest.raises(BusinessRuleError) as info:
        propose(
            referent, site, referent_organisation, company_data(site.territory, siret=existing.company.siret)
        )
    assert existing.referent.get_full_name() in info.value.message
    assert counts() == before


def test_concurrent_proposal_caught_by_the_constraint_names_the_referent(
    monkeypatch, site, referent, referent_organisation
):
    """Two advisers submit at the same moment: the check passed for both, the database refuses one."""
    existing = CaseFactory(site=site)
    real = services._existing_open_case
    calls = []

    def not_seen_the_first_time(siret, site):
        calls.append(siret)
        return None if len(calls) == 1 else real(siret, site)

    monkeypatch.setattr(services, "_existing_open_case", not_seen_the_first_time)
    before = counts()
    with pytest.raises(BusinessRuleError) as info:
        propose(
            referent, site, referent_organisation, company_data(site.territory, siret=existing.company.siret)
        )
    assert existing.referent.get_full_name() in info.value.message
    assert counts() == before


@pytest.mark.parametrize("previous_state", [S.CLOSED, S.REFUSED, S.WITHDRAWN])
def test_company_whose_cases_are_all_finished_is_reused(
    site, referent, referent_organisation, previous_state
):
    previous = CaseFactory(site=site, state=previous_state)
    companies = Company.objects.count()

    case = propose(
        referent,
        site,
        referent_organisation,
        company_data(site.territory, siret=previous.company.siret, name="X"),
    )

    assert Company.objects.count() == companies
    assert case.company_id == previous.company_id
    assert Company.objects.get(pk=previous.company_id).name == previous.company.name
    assert Case.objects.filter(company=previous.company).count() == 2


def test_user_without_referent_membership_cannot_propose(site, agent):
    organisation = agent.memberships.get().organisation
    before = counts()
    with pytest.raises(NotAllowedError):
        propose(agent, site, organisation, company_data(site.territory))
    assert counts() == before


def test_referent_cannot_propose_for_an_organisation_they_do_not_belong_to(site, referent):
    stranger_org = OrganisationFactory(territories=[site.territory])
    with pytest.raises(NotAllowedError):
        propose(referent, site, stranger_org, company_data(site.territory))
    assert not Case.objects.exists()


def test_referent_whose_organisations_do_not_serve_the_site_cannot_propose(site, other_referent):
    organisation = other_referent.memberships.get().organisation
    before = counts()
    with pytest.raises(NotAllowedError):
        propose(other_referent, site, organisation, company_data(site.territory))
    assert counts() == before


def test_referent_cannot_propose_for_their_organisation_that_does_not_serve_the_site(
    site, other_site, referent, referent_organisation
):
    """Site coverage is checked for the organisation the referent acts for, not for any of theirs."""
    elsewhere = OrganisationFactory(territories=[other_site.territory])
    MembershipFactory(user=referent, organisation=elsewhere, can_be_referent=True)
    rules.forget_roles(referent)
    before = counts()
    with pytest.raises(NotAllowedError):
        propose(referent, site, elsewhere, company_data(site.territory))
    assert counts() == before
    assert propose(referent, site, referent_organisation, company_data(site.territory)).pk


def test_organisation_of_the_department_serves_its_sites(site, referent):
    departmental = OrganisationFactory(department=site.department)
    MembershipFactory(user=referent, organisation=departmental, can_be_referent=True)
    rules.forget_roles(referent)
    assert (
        propose(referent, site, departmental, company_data(site.territory)).referent_organisation
        == departmental
    )


def test_company_territory_must_be_in_the_site_department(site, other_site, referent, referent_organisation):
    before = counts()
    with pytest.raises(BusinessRuleError):
        propose(referent, site, referent_organisation, company_data(other_site.territory))
    assert counts() == before


def test_known_company_of_another_department_is_refused(site, other_site, referent, referent_organisation):
    """A company already in the register (from another site) keeps its territory: it cannot be
    enrolled on a site of another department."""
    known = CaseFactory(site=other_site, closed=True)
    before = counts()
    with pytest.raises(BusinessRuleError):
        propose(
            referent, site, referent_organisation, company_data(site.territory, siret=known.company.siret)
        )
    assert counts() == before


# --- Database constraints (last line of defence) ---------------------------------------------------


def test_database_refuses_a_second_open_case_for_the_same_company_and_site(case):
    with pytest.raises(IntegrityError), transaction.atomic():
        CaseFactory(site=case.site, company=case.company)


def test_database_accepts_a_new_case_once_the_previous_one_is_finished(site):
    finished = CaseFactory(site=site, withdrawn=True)
    CaseFactory(site=site, company=finished.company)
    assert Case.objects.filter(company=finished.company).count() == 2


def test_database_refuses_a_closed_case_without_outcome(site):
    with pytest.raises(IntegrityError), transaction.atomic():
        CaseFactory(site=site, closed=True, outcome="")


def test_database_refuses_an_enrolled_case_without_consent(site):
    with pytest.raises(IntegrityError), transaction.atomic():
        CaseFactory(site=site, enrolled=True, consent=False)


def test_database_refuses_a_case_without_referent(case):
    with pytest.raises(IntegrityError), transaction.atomic():
        Case.objects.filter(pk=case.pk).update(referent=None)


# --- Needs -----------------------------------------------------------------------------------------


def _age(case, days=3):
    past = timezone.now() - datetime.timedelta(days=days)
    Case.objects.filter(pk=case.pk).update(last_activity_at=past)
    return past


@pytest.mark.parametrize("actor_name", ["referent", "animator"])
def test_need_create(request, site, referent, actor_name):
    actor = request.getfixturevalue(actor_name)
    case = CaseFactory(site=site, referent=referent, enrolled=True)
    past = _age(case)

    need = services.need_create(
        actor=actor,
        case=case,
        category=ToolboxCategory.RECRUITMENT,
        description="  Deux soudeurs TIG  ",
        quantity=2,
        deadline=datetime.date(2027, 3, 1),
    )

    need.refresh_from_db()
    assert (need.case_id, need.category, need.description, need.quantity, need.deadline) == (
        case.pk,
        ToolboxCategory.RECRUITMENT,
        "Deux soudeurs TIG",
        2,
        datetime.date(2027, 3, 1),
    )
    assert need.status == NeedStatus.OPEN
    assert need.created_by == actor
    assert Case.objects.get(pk=case.pk).last_activity_at > past


@pytest.mark.parametrize("actor_name", ["other_referent", "other_animator", "agent", "observer"])
def test_need_create_refused_to_others(request, case, actor_name):
    with pytest.raises(NotAllowedError):
        services.need_create(
            actor=request.getfixturevalue(actor_name), case=case, category="training", description="Former"
        )
    assert not Need.objects.exists()


def test_need_create_refused_on_a_finished_case(site, referent):
    case = CaseFactory(site=site, referent=referent, closed=True)
    with pytest.raises(NotAllowedError):
        services.need_create(actor=referent, case=case, category="training", description="Former")
    assert not Need.objects.exists()


@pytest.mark.parametrize(
    "values",
    [
        {"description": ""},
        {"description": "   "},
        {"quantity": 0},
        {"category": "bogus"},
    ],
)
def test_need_create_with_invalid_values_is_refused(case, referent, values):
    arguments = {"category": ToolboxCategory.TRAINING, "description": "Former 3 caristes", **values}
    with pytest.raises(BusinessRuleError):
        services.need_create(actor=referent, case=case, **arguments)
    assert not Need.objects.exists()


@pytest.mark.parametrize("actor_name", ["referent", "animator"])
def test_need_update(request, site, referent, actor_name):
    actor = request.getfixturevalue(actor_name)
    need = NeedFactory(case=CaseFactory(site=site, referent=referent, active=True))
    past = _age(need.case)

    services.need_update(
        actor=actor, need=need, description=" Trois soudeurs ", quantity=3, status=NeedStatus.IN_PROGRESS
    )

    need.refresh_from_db()
    assert (need.description, need.quantity, need.status) == ("Trois soudeurs", 3, NeedStatus.IN_PROGRESS)
    assert Case.objects.get(pk=need.case_id).last_activity_at > past


@pytest.mark.parametrize("actor_name", ["other_referent", "other_animator", "agent", "observer"])
def test_need_update_refused_to_others(request, site, referent, actor_name):
    need = NeedFactory(case=CaseFactory(site=site, referent=referent, active=True))
    with pytest.raises(NotAllowedError):
        services.need_update(actor=request.getfixturevalue(actor_name), need=need, description="Autre")
    assert Need.objects.get(pk=need.pk).description == need.description


@pytest.mark.parametrize(
    "values",
    [
        {"description": ""},
        {"description": "  "},
        {"quantity": 0},
        {"status": "bogus"},
        {"case": None},
        {"created_by": None},
        {"colour": "blue"},
    ],
)
def test_need_update_with_invalid_values_is_refused(site, referent, values):
    need = NeedFactory(case=CaseFactory(site=site, referent=referent, active=True))
    before = Need.objects.values().get(pk=need.pk)
    with pytest.raises(BusinessRuleError):
        services.need_update(actor=referent, need=need, **values)
    assert Need.objects.values().get(pk=need.pk) == before


# --- Experiment window, known companies, site data -------------------------------------------------


def test_enrolment_outside_the_site_window_is_refused(site, animator, referent):
    site.starts_on, site.ends_on = datetime.date(2020, 1, 1), datetime.date(2020, 12, 31)
    site.save()
    case = CaseFactory(site=site, referent=referent, consent=True)
    with pytest.raises(BusinessRuleError, match="2020"):
        services.case_transition(actor=animator, case=case, name="enrol", expected_state=S.PROPOSED)


def test_no_proposal_after_the_end_of_the_experiment(site, referent, referent_organisation):
    site.starts_on, site.ends_on = datetime.date(2020, 1, 1), datetime.date(2020, 12, 31)
    site.save()
    before = counts()
    with pytest.raises(BusinessRuleError):
        propose(referent, site, referent_organisation, company_data(site.territory))
    assert counts() == before


def test_proposing_a_known_company_keeps_its_record_and_adds_the_contact(
    site, referent, referent_organisation
):
    known = CaseFactory(site=site, closed=True)
    propose(
        referent,
        site,
        referent_organisation,
        company_data(
            site.territory, siret=known.company.siret, name="Autre nom", contact_name="Nouvelle Personne"
        ),
    )
    known.company.refresh_from_db()
    assert known.company.name != "Autre nom"
    assert known.company.contacts.filter(full_name="Nouvelle Personne").exists()


def test_site_territory_must_belong_to_its_department(site, other_site):
    site.territory = other_site.territory
    with pytest.raises(ValidationError):
        site.full_clean()
