"""Enrolment decisions, escalations to the animators and referent handovers."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from casework import rules
from casework import services as case_services
from casework.enums import CaseState
from casework.exceptions import BusinessRuleError, NotAllowedError, StaleStateError
from casework.models import Case, Handover
from notifications.models import Notification
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from tests.test_views import alerts
from workflows import services
from workflows.models import Escalation, RequestStatus

pytestmark = pytest.mark.django_db


def told(user, event_type):
    return Notification.objects.filter(recipient=user, event_type=event_type).exists()


# --- Enrolment --------------------------------------------------------------------------------------


def test_proposal_reaches_the_animators_and_their_decision_the_referent(
    site, referent, animator, referent_organisation
):
    case = case_services.case_propose(
        actor=referent,
        site=site,
        referent_organisation=referent_organisation,
        company=case_services.CompanyData(
            siret="73282932000074",
            name="Chaudronnerie",
            naf_code="25.62B",
            size_band="12",
            commune="Ancenis",
            territory_id=site.territory_id,
        ),
        consent=True,
    )
    assert told(animator, "enrolment_proposed")
    case_services.case_transition(actor=animator, case=case, name="enrol", expected_state="proposed")
    assert told(referent, "enrolment_decided")


def test_animators_see_proposals_in_their_task_list(client, login, site, referent, animator):
    case = CaseFactory(site=site, referent=referent, company__name="Menuiserie Durand")
    html = login(client, animator).get(reverse("task_list")).content.decode()
    assert "Menuiserie Durand" in html
    assert reverse("case_detail", kwargs={"public_id": case.public_id}) in html


# --- Escalation -------------------------------------------------------------------------------------


@pytest.fixture
def active_case(site, referent):
    case = CaseFactory(site=site, referent=referent, active=True)
    NeedFactory(case=case, created_by=referent, category="housing")
    return case


def test_referent_escalates_and_the_animators_are_told(active_case, referent, animator):
    with pytest.raises(BusinessRuleError):
        services.escalation_raise(actor=referent, case=active_case, text="  ")
    services.escalation_raise(actor=referent, case=active_case, text="Aucun logement pour les saisonniers")
    assert told(animator, "escalation_raised")
    with pytest.raises(StaleStateError):  # one open escalation at a time
        services.escalation_raise(actor=referent, case=active_case, text="encore")


def test_only_the_referent_escalates_and_only_the_animators_decide(active_case, referent, animator, agent):
    with pytest.raises(NotAllowedError):
        services.escalation_raise(actor=animator, case=active_case, text="x")
    escalation = services.escalation_raise(actor=referent, case=active_case, text="x")
    with pytest.raises(NotAllowedError):
        services.escalation_decide(actor=referent, escalation=escalation, decision="note")
    with pytest.raises(NotAllowedError):
        services.escalation_decide(actor=agent, escalation=escalation, decision="note")


def test_decision_mobilise_opens_a_request_on_the_chosen_service(active_case, referent, animator, site):
    housing = OrganisationFactory(name="Habitat Jeunes")
    service = ToolboxServiceFactory(category="housing", provider=housing, territories=[site.territory])
    escalation = services.escalation_raise(actor=referent, case=active_case, text="Logement")
    services.escalation_decide(
        actor=animator,
        escalation=escalation,
        decision="mobilise",
        text="Mobiliser Habitat Jeunes",
        need=active_case.needs.get(),
        service=service,
    )
    escalation.refresh_from_db()
    assert escalation.decision == "mobilise" and escalation.service_request.provider == housing
    assert escalation.service_request.stage == RequestStatus.WAITING
    assert told(referent, "escalation_decided")


def test_decision_close_closes_the_case_with_its_outcome(active_case, referent, animator):
    escalation = services.escalation_raise(
        actor=referent, case=active_case, text="L'entreprise ne répond plus"
    )
    with pytest.raises(BusinessRuleError):  # closing needs an outcome
        services.escalation_decide(actor=animator, escalation=escalation, decision="close")
    services.escalation_decide(
        actor=animator, escalation=escalation, decision="close", outcome="company_left"
    )
    active_case.refresh_from_db()
    assert active_case.state == CaseState.CLOSED and active_case.outcome == "company_left"
    escalation.refresh_from_db()
    assert not escalation.is_open
    with pytest.raises(StaleStateError):
        services.escalation_decide(actor=animator, escalation=escalation, decision="note")


def test_escalation_through_the_pages(client, login, active_case, referent, animator):
    login(client, referent)
    client.post(reverse("escalation_raise", kwargs={"public_id": active_case.public_id}), {"text": "Bloqué"})
    login(client, animator)
    page = client.get(reverse("case_detail", kwargs={"public_id": active_case.public_id})).content.decode()
    assert "Bloqué" in page
    response = client.post(
        reverse("escalation_decide", kwargs={"public_id": active_case.public_id}),
        {"decision": "note", "text": "On en parle en revue hebdomadaire"},
        follow=True,
    )
    assert Escalation.objects.get().decision == "note"
    assert alerts(response)


# --- Referent handover ----------------------------------------------------------------------------


@pytest.fixture
def successor(referent_organisation):
    user = UserFactory(first_name="Inès", last_name="Moreau")
    MembershipFactory(user=user, organisation=referent_organisation, can_be_referent=True)
    return user


def test_handover_changes_hands_only_when_the_new_referent_accepts(
    active_case, referent, successor, referent_organisation, animator
):
    handover = case_services.handover_propose(
        actor=referent, case=active_case, to_user=successor, to_organisation=referent_organisation
    )
    active_case.refresh_from_db()
    assert active_case.referent == referent  # nothing changes yet
    assert told(successor, "handover_proposed")
    # The proposed referent sees the case to decide, but cannot act as referent yet.
    assert active_case in Case.objects.visible_to(successor)
    assert not rules.is_case_referent(active_case, successor)

    case_services.handover_accept(actor=successor, handover=handover)
    active_case.refresh_from_db()
    assert active_case.referent == successor
    assert active_case.transitions.filter(name="handover", actor=successor).exists()
    assert told(referent, "handover_decided") and told(animator, "handover_decided")
    # The former referent keeps reading the case for 30 days, without acting on it.
    rules.forget_roles(referent)
    assert active_case in Case.objects.visible_to(referent)
    assert not rules.is_case_referent(active_case, referent)


def test_former_referent_loses_access_after_the_grace_period(
    active_case, referent, successor, referent_organisation, settings
):
    handover = case_services.handover_propose(
        actor=referent, case=active_case, to_user=successor, to_organisation=referent_organisation
    )
    case_services.handover_accept(actor=successor, handover=handover)
    Handover.objects.filter(pk=handover.pk).update(decided_at=timezone.now() - datetime.timedelta(days=31))
    assert active_case not in Case.objects.visible_to(referent)


def test_handover_refusals(active_case, referent, successor, referent_organisation, agent, other_referent):
    with pytest.raises(NotAllowedError):
        case_services.handover_propose(
            actor=agent, case=active_case, to_user=successor, to_organisation=referent_organisation
        )
    with pytest.raises(BusinessRuleError):  # an agent who may not be referent
        case_services.handover_propose(
            actor=referent,
            case=active_case,
            to_user=agent,
            to_organisation=agent.memberships.get().organisation,
        )
    with pytest.raises(BusinessRuleError):  # an organisation that does not serve the site
        case_services.handover_propose(
            actor=referent,
            case=active_case,
            to_user=other_referent,
            to_organisation=other_referent.memberships.get().organisation,
        )
    handover = case_services.handover_propose(
        actor=referent, case=active_case, to_user=successor, to_organisation=referent_organisation
    )
    with pytest.raises(StaleStateError):  # one pending handover at a time
        case_services.handover_propose(
            actor=referent, case=active_case, to_user=successor, to_organisation=referent_organisation
        )
    with pytest.raises(NotAllowedError):  # only the proposed referent accepts
        case_services.handover_accept(actor=referent, handover=handover)
    case_services.handover_decline(actor=successor, handover=handover, reason="Pas disponible")
    with pytest.raises(StaleStateError):
        case_services.handover_accept(actor=successor, handover=handover)
    active_case.refresh_from_db()
    assert active_case.referent == referent


def test_handover_through_the_pages(client, login, active_case, referent, successor, referent_organisation):
    login(client, referent)
    membership = successor.memberships.get()
    client.post(
        reverse("handover_propose", kwargs={"public_id": active_case.public_id}),
        {"to_membership": membership.pk, "message": "Je change de poste"},
    )
    login(client, successor)
    page = client.get(reverse("case_detail", kwargs={"public_id": active_case.public_id})).content.decode()
    assert "Je change de poste" in page
    client.post(reverse("handover_answer", kwargs={"public_id": active_case.public_id, "action": "accepter"}))
    active_case.refresh_from_db()
    assert active_case.referent == successor


# --- Cases and their open requests -----------------------------------------------------------------


@pytest.fixture
def housing(site):
    organisation = OrganisationFactory(name="Habitat Jeunes")
    ToolboxServiceFactory(category="housing", provider=organisation, territories=[site.territory])
    return organisation


def test_a_case_with_open_requests_is_not_closed_or_withdrawn(active_case, referent, housing):
    services.request_open(
        actor=referent, case=active_case, need=active_case.needs.get(), brief="x", category="housing"
    )
    for name in ("close", "withdraw"):
        with pytest.raises(BusinessRuleError, match="ouvertes|open"):
            case_services.case_transition(
                actor=referent,
                case=active_case,
                name=name,
                expected_state="active",
                reason="r",
                outcome="not_met",
            )


def test_escalation_close_cancels_the_open_requests_first(active_case, referent, animator, housing):
    request = services.request_open(
        actor=referent, case=active_case, need=active_case.needs.get(), brief="x", category="housing"
    )
    escalation = services.escalation_raise(actor=referent, case=active_case, text="Fin")
    services.escalation_decide(
        actor=animator, escalation=escalation, decision="close", outcome="company_left"
    )
    request.refresh_from_db()
    active_case.refresh_from_db()
    assert request.stage == RequestStatus.CANCELLED and active_case.state == CaseState.CLOSED


def test_validation_follows_the_referent_after_a_handover(
    client, login, active_case, referent, housing, successor, referent_organisation
):
    from workflows.flows import ServiceRequestFlow as FLOW
    from workflows.selectors import my_tasks

    request = services.request_open(
        actor=referent, case=active_case, need=active_case.needs.get(), brief="x", category="housing"
    )
    agent = UserFactory()
    MembershipFactory(user=agent, organisation=housing, can_be_referent=False)
    review = request.task_set.get(flow_task=FLOW.review)
    services.task_claim(actor=agent, task_id=review.pk)
    services.request_accept(actor=agent, task_id=review.pk)
    services.request_deliver(
        actor=agent, task_id=request.task_set.get(flow_task=FLOW.deliver).pk, result_text="Fait"
    )
    assert my_tasks(referent).filter(flow_task=FLOW.validate).exists()
    handover = case_services.handover_propose(
        actor=referent, case=active_case, to_user=successor, to_organisation=referent_organisation
    )
    case_services.handover_accept(actor=successor, handover=handover)
    assert not my_tasks(referent).filter(flow_task=FLOW.validate).exists()
    validate = my_tasks(successor).get(flow_task=FLOW.validate)
    services.request_validate(actor=successor, task_id=validate.pk, accept=True)
    request.refresh_from_db()
    assert request.stage == RequestStatus.CLOSED
