"""Service requests through the pages, as the referent, the partner agent and the animators use them."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from casework.enums import CaseState
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
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.models import RequestStatus, ServiceRequest

pytestmark = pytest.mark.django_db


@pytest.fixture
def transport(site):
    organisation = OrganisationFactory(name="Plateforme mobilité du Pays d'Ancenis")
    ToolboxServiceFactory(
        name="Prêt de scooters", category="mobility", provider=organisation, territories=[site.territory]
    )
    return organisation


@pytest.fixture
def transport_agent(transport):
    user = UserFactory(first_name="Yann", last_name="Bodin")
    MembershipFactory(user=user, organisation=transport, can_be_referent=False)
    return user


@pytest.fixture
def diagnosed(site, referent):
    case = CaseFactory(site=site, referent=referent, diagnosed=True)
    NeedFactory(case=case, created_by=referent, category="mobility", description="Venir à l'usine à 5 h")
    return case


def act(client, service_request, name, data=None):
    return client.post(
        reverse("request_action", kwargs={"public_id": service_request.public_id, "name": name}),
        data or {},
        follow=True,
    )


def test_a_request_from_opening_to_validation_through_the_pages(
    client, login, referent, transport_agent, diagnosed, transport
):
    login(client, referent)
    form = client.get(reverse("request_open", kwargs={"public_id": diagnosed.public_id})).content.decode()
    token = re.search(r'name="submission_id" value="([0-9a-f-]+)"', form).group(1)
    need = diagnosed.needs.get()
    response = client.post(
        reverse("request_open", kwargs={"public_id": diagnosed.public_id}),
        {
            "need": need.pk,
            "category": "mobility",
            "brief": "Trois recrues sans permis",
            "submission_id": token,
        },
        follow=True,
    )
    service_request = ServiceRequest.objects.get()
    assert service_request.provider == transport
    assert any("Plateforme mobilité" in text for text in alerts(response))

    # The agent finds it in the organisation's queue, takes it and accepts it.
    login(client, transport_agent)
    queue = client.get(reverse("task_list"), {"vue": "file"}).content.decode()
    assert diagnosed.company.name in queue
    act(client, service_request, "claim")
    act(client, service_request, "accept")
    service_request.refresh_from_db()
    assert service_request.stage == RequestStatus.ACCEPTED

    act(client, service_request, "plan", {"plan-kind": "meeting", "plan-planned_on": "2026-12-03"})
    intervention = service_request.interventions.get()
    act(
        client,
        service_request,
        "record",
        {
            "record-intervention": intervention.pk,
            "record-status": "done",
            "record-outcome": "Trois scooters prêtés",
        },
    )
    act(
        client,
        service_request,
        "deliver",
        {"deliver-result_text": "Les trois recrues viennent en scooter", "deliver-hires": "3"},
    )
    service_request.refresh_from_db()
    assert service_request.stage == RequestStatus.DELIVERED

    # The referent sees the acceptance on the case and validates.
    login(client, referent)
    case_page = client.get(reverse("case_detail", kwargs={"public_id": diagnosed.public_id})).content.decode()
    assert "Plateforme mobilité" in case_page
    act(client, service_request, "validate", {"validate-comment": ""})
    service_request.refresh_from_db()
    assert service_request.stage == RequestStatus.CLOSED
    page = client.get(
        reverse("request_detail", kwargs={"public_id": service_request.public_id})
    ).content.decode()
    for step in ("Orientée", "Prise en charge", "Acceptée", "Intervention prévue", "Validée"):
        assert step in page, step
    diagnosed.refresh_from_db()
    assert diagnosed.state == CaseState.ACTIVE


def test_second_claim_through_the_page_says_who_took_it(
    client, login, referent, transport, transport_agent, diagnosed
):
    service_request = services.request_open(
        actor=referent, case=diagnosed, need=diagnosed.needs.get(), brief="x", category="mobility"
    )
    colleague = UserFactory()
    MembershipFactory(user=colleague, organisation=transport, can_be_referent=False)
    login(client, transport_agent)
    act(client, service_request, "claim")
    login(client, colleague)
    response = act(client, service_request, "claim")
    assert any("Yann Bodin" in text for text in alerts(response))


def test_request_open_form_posted_twice_opens_one_request(client, login, referent, transport, diagnosed):
    login(client, referent)
    url = reverse("request_open", kwargs={"public_id": diagnosed.public_id})
    token = re.search(r'name="submission_id" value="([0-9a-f-]+)"', client.get(url).content.decode()).group(1)
    data = {"need": diagnosed.needs.get().pk, "category": "mobility", "brief": "x", "submission_id": token}
    client.post(url, data)
    response = client.post(url, data)
    assert ServiceRequest.objects.count() == 1
    assert response.status_code == 200


def test_the_decliner_goes_back_to_the_queue_not_to_a_missing_page(
    client, login, referent, transport, transport_agent, diagnosed
):
    """Declining takes the case out of the organisation's sight: the agent lands on their queue, with
    the confirmation, instead of « Page non trouvée » (the request they just left)."""
    service_request = services.request_open(
        actor=referent, case=diagnosed, need=diagnosed.needs.get(), brief="x", category="mobility"
    )
    login(client, transport_agent)
    act(client, service_request, "claim")
    response = act(client, service_request, "decline", {"decline-reason": "no_capacity"})
    assert response.redirect_chain[-1][0] == reverse("task_list") + "?vue=file"
    assert response.status_code == 200
    assert any("Vous avez décliné la demande" in text for text in alerts(response))


def test_bad_action_input_is_explained(client, login, referent, transport, transport_agent, diagnosed):
    service_request = services.request_open(
        actor=referent, case=diagnosed, need=diagnosed.needs.get(), brief="x", category="mobility"
    )
    login(client, transport_agent)
    act(client, service_request, "claim")
    response = act(client, service_request, "decline", {"decline-reason": "other", "decline-reason_text": ""})
    assert alerts(response) and service_request.declines.count() == 0
    response = act(client, service_request, "nonsense")
    assert response.status_code == 200
    response = act(client, service_request, "plan", {"plan-kind": "meeting", "plan-planned_on": "2026-13-45"})
    assert alerts(response) and service_request.interventions.count() == 0


def _count(client, url, **params):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("view", ["file", "mes-taches", "historique"])
def test_task_lists_keep_their_query_count_at_10_and_200_tasks(client, login, referent, site, view):
    organisation = OrganisationFactory()
    ToolboxServiceFactory(category="mobility", provider=organisation, territories=[site.territory])
    agent = UserFactory()
    MembershipFactory(user=agent, organisation=organisation, can_be_referent=False)

    def add_requests(number):
        for index in range(number):
            case = CaseFactory(site=site, referent=referent, diagnosed=True)
            need = NeedFactory(case=case, created_by=referent, category="mobility")
            request = services.request_open(
                actor=referent, case=case, need=need, brief="x", category="mobility"
            )
            task = request.task_set.get(flow_task=FLOW.review)
            if view != "file":
                services.task_claim(actor=agent, task_id=task.pk)
            if view == "historique" and index % 2:
                services.request_accept(actor=agent, task_id=task.pk)
            elif view == "historique":  # out of the agent's sight: a row without the company
                services.request_decline(actor=agent, task_id=task.pk, reason="no_capacity")

    login(client, agent)
    add_requests(10)
    at_10 = _count(client, reverse("task_list"), vue=view)
    add_requests(190)
    assert _count(client, reverse("task_list"), vue=view) == at_10


def test_request_page_query_count(
    client, login, referent, transport, transport_agent, diagnosed, django_assert_num_queries
):
    service_request = services.request_open(
        actor=referent, case=diagnosed, need=diagnosed.needs.get(), brief="x", category="mobility"
    )
    login(client, transport_agent)
    # session, user, roles (3), header counters and bell, request, events, declines, interventions, open tasks
    with django_assert_num_queries(12):
        client.get(reverse("request_detail", kwargs={"public_id": service_request.public_id}))


def test_decline_dispatch_send_back_and_cancel_through_the_pages(
    client, login, referent, animator, transport, transport_agent, diagnosed
):
    service_request = services.request_open(
        actor=referent, case=diagnosed, need=diagnosed.needs.get(), brief="x", category="mobility"
    )
    # The only provider declines: nobody is left, the animators choose a partner by hand.
    login(client, transport_agent)
    act(client, service_request, "claim")
    act(client, service_request, "decline", {"decline-reason": "no_capacity"})
    service_request.refresh_from_db()
    assert service_request.stage == RequestStatus.UNROUTABLE
    login(client, animator)
    page = client.get(
        reverse("request_detail", kwargs={"public_id": service_request.public_id})
    ).content.decode()
    assert "Confier à cette structure" in page
    garage = OrganisationFactory(name="Garage solidaire")
    mechanic = UserFactory()
    MembershipFactory(user=mechanic, organisation=garage, can_be_referent=False)
    act(client, service_request, "dispatch", {"dispatch-provider": garage.pk})
    service_request.refresh_from_db()
    assert service_request.provider == garage and service_request.stage == RequestStatus.WAITING

    login(client, mechanic)
    act(client, service_request, "claim")
    act(client, service_request, "accept")
    act(client, service_request, "deliver", {"deliver-result_text": "Deux voitures prêtées"})
    login(client, referent)
    response = act(client, service_request, "send_back", {"validate-comment": ""})
    assert alerts(response)  # a comment is required to send back
    act(client, service_request, "send_back", {"validate-comment": "Il manque la troisième recrue"})
    service_request.refresh_from_db()
    assert service_request.stage == RequestStatus.ACCEPTED

    # The referent cannot move the case to follow-up while a request is open; cancelling closes it.
    diagnosed.refresh_from_db()
    follow_up = client.post(
        reverse("case_transition", kwargs={"public_id": diagnosed.public_id, "name": "follow_up"}),
        {"follow_up-expected_state": "active"},
        follow=True,
    )
    assert any("encore ouvertes" in text for text in alerts(follow_up))
    act(client, service_request, "cancel", {"cancel-reason": "La troisième recrue a son permis"})
    service_request.refresh_from_db()
    assert service_request.stage == RequestStatus.CANCELLED
    client.post(
        reverse("case_transition", kwargs={"public_id": diagnosed.public_id, "name": "follow_up"}),
        {"follow_up-expected_state": "active"},
    )
    diagnosed.refresh_from_db()
    assert diagnosed.state == CaseState.FOLLOW_UP


def test_an_agent_of_another_organisation_neither_sees_nor_claims(
    client, login, referent, transport, diagnosed, agent
):
    service_request = services.request_open(
        actor=referent, case=diagnosed, need=diagnosed.needs.get(), brief="x", category="mobility"
    )
    login(client, agent)
    assert (
        client.get(reverse("request_detail", kwargs={"public_id": service_request.public_id})).status_code
        == 404
    )
    assert act(client, service_request, "claim").status_code == 404
    assert diagnosed.company.name not in client.get(reverse("task_list"), {"vue": "file"}).content.decode()


def test_case_page_shows_the_request_steps_in_its_history_in_constant_queries(
    client, login, referent, transport, transport_agent, diagnosed
):
    def open_one():
        request = services.request_open(
            actor=referent, case=diagnosed, need=diagnosed.needs.get(), brief="x", category="mobility"
        )
        task = request.task_set.get(flow_task=FLOW.review)
        services.task_claim(actor=transport_agent, task_id=task.pk)
        services.request_accept(actor=transport_agent, task_id=task.pk)

    open_one()
    login(client, referent)
    url = reverse("case_detail", kwargs={"public_id": diagnosed.public_id})
    page = client.get(url).content.decode()
    for step in ("orientée vers", "prise en charge par", "acceptée par", "Yann Bodin"):
        assert step in page, step
    few = _count(client, url)
    for _ in range(4):
        open_one()
    assert _count(client, url) == few


def _history(client):
    response = client.get(reverse("task_list"), {"vue": "historique"})
    assert response.status_code == 200
    return response.content.decode()


def test_the_history_of_a_decliner_no_longer_names_the_company(
    client, login, referent, transport, transport_agent, diagnosed
):
    """Declining takes the case out of the agent's sight: the step stays in their history, without
    the company, its SIRET, its site or a link to the request."""
    service_request = services.request_open(
        actor=referent, case=diagnosed, need=diagnosed.needs.get(), brief="x", category="mobility"
    )
    task = service_request.task_set.get(flow_task=FLOW.review)
    services.task_claim(actor=transport_agent, task_id=task.pk)
    services.request_decline(actor=transport_agent, task_id=task.pk, reason="no_capacity")
    login(client, transport_agent)
    page = _history(client)
    assert "Accepter ou décliner la demande" in page  # the step is still there
    assert "Dossier auquel vous n’avez plus accès" in page
    company = diagnosed.company
    for secret in (company.name, company.siret, diagnosed.site.name, str(service_request.public_id)):
        assert secret not in page, secret


def test_a_referent_gone_to_another_site_no_longer_sees_the_companies_of_their_history(
    client, login, referent, other_site, transport, transport_agent, diagnosed
):
    """The referent validated a delivery, then left the organisation for one that serves another
    pilot site: their history keeps the step, not the company."""
    service_request = services.request_open(
        actor=referent, case=diagnosed, need=diagnosed.needs.get(), brief="x", category="mobility"
    )
    review = service_request.task_set.get(flow_task=FLOW.review)
    services.task_claim(actor=transport_agent, task_id=review.pk)
    services.request_accept(actor=transport_agent, task_id=review.pk)
    deliver = service_request.task_set.get(flow_task=FLOW.deliver)
    services.request_deliver(actor=transport_agent, task_id=deliver.pk, result_text="Trois scooters")
    validate = service_request.task_set.get(flow_task=FLOW.validate)
    services.request_validate(actor=referent, task_id=validate.pk, accept=True)
    login(client, referent)
    company = diagnosed.company
    assert company.name in _history(client)  # still the referent: named

    referent.memberships.update(is_active=False)
    elsewhere = OrganisationFactory(territories=[other_site.territory])
    MembershipFactory(user=referent, organisation=elsewhere, can_be_referent=True)
    page = _history(client)
    assert "Valider la réalisation" in page
    assert "Dossier auquel vous n’avez plus accès" in page
    for secret in (company.name, company.siret, diagnosed.site.name, str(service_request.public_id)):
        assert secret not in page, secret
