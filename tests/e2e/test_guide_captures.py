"""The main pages of each role, as the user guide (docs/guide.md) shows them, on a small pilot site
in several states: each page is checked for what its reader relies on, then captured
(docs/guide/captures/). The live scenarios (test_three_users.py, test_routing_and_deadlines.py)
capture the pages they act on: the request form, the queue, a request, the board.

The site: five companies of the referent Claire Durand in Ancenis, one per stage (proposed,
diagnosed, a request waiting for a partner, a request accepted, follow-up); one request is past its
response deadline, fired by the timers in another process as in production."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect
from viewflow.workflow.models import Task

from tests.e2e.conftest import screenshot
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import services
from workflows.flows import ServiceRequestFlow
from workflows.models import ServiceRequest

pytestmark = pytest.mark.e2e

COMPANIES = {
    "proposed": "Boulangerie Le Fournil",
    "diagnosed": "Garage des Coteaux",
    "waiting": "Menuiserie Erdre et Loire",
    "accepted": "Transports Loire Ouest",
    "follow_up": "Atelier Textile du Val",
}


@pytest.fixture
def pilot_site(site, referent, animator, observer, run_command):
    for user, (first, last) in ((animator, ("Nadia", "Roussel")), (observer, ("Marc", "Lefèvre"))):
        user.first_name, user.last_name = first, last
        user.save(update_fields=["first_name", "last_name"])
    mobility = OrganisationFactory(name="Mobilité Solidaire 44", territories=[site.territory])
    ToolboxServiceFactory(
        name="Location de scooters", category="mobility", provider=mobility, territories=[site.territory]
    )
    agent = UserFactory(username="agent.mobilite", first_name="Yann", last_name="Bodin")
    MembershipFactory(user=agent, organisation=mobility, can_be_referent=False)
    housing = OrganisationFactory(name="Habitat Jeunes Ancenis", territories=[site.territory])
    ToolboxServiceFactory(
        name="Logement temporaire", category="housing", provider=housing, territories=[site.territory]
    )

    cases = {
        "proposed": CaseFactory(
            site=site, referent=referent, consent=True, company__name=COMPANIES["proposed"]
        )
    }
    cases["diagnosed"] = CaseFactory(
        site=site, referent=referent, diagnosed=True, company__name=COMPANIES["diagnosed"]
    )
    NeedFactory(case=cases["diagnosed"], description="Recruter deux mécaniciens.")
    for key in ("waiting", "accepted"):
        cases[key] = CaseFactory(site=site, referent=referent, active=True, company__name=COMPANIES[key])
    cases["follow_up"] = CaseFactory(
        site=site, referent=referent, follow_up=True, company__name=COMPANIES["follow_up"]
    )

    def open_request(case, category, description):
        need = NeedFactory(case=case, category=category, description=description)
        return services.request_open(
            actor=referent, case=case, need=need, brief=description, category=category
        )

    open_request(cases["waiting"], "mobility", "Trajets des apprentis.")
    late = open_request(cases["waiting"], "housing", "Loger un apprenti pendant sa formation.")
    accepted = open_request(cases["accepted"], "mobility", "Deux scooters pour les nouvelles recrues.")
    task = Task.objects.get(process=accepted, flow_task=ServiceRequestFlow.review)
    services.task_claim(actor=agent, task_id=task.pk)
    services.request_accept(actor=agent, task_id=task.pk)
    # The housing request was not answered in time: the timers pass it to the animators.
    past = timezone.now() - timedelta(minutes=1)
    Task.objects.filter(process_id=late.pk, flow_task_type="TIMER").update(scheduled=past)
    ServiceRequest.objects.filter(pk=late.pk).update(deadline=past)
    assert "1 minuterie(s) déclenchée(s)." in run_command("run_timers", "--once")
    return cases


def test_the_referents_pages(server, open_as, pilot_site, referent):
    page = open_as(referent, "/")
    expect(page.get_by_role("heading", name="Bonjour Claire", level=1)).to_be_visible()
    mine = page.get_by_role("region", name="Les entreprises dont je suis référent")
    for company in COMPANIES.values():
        expect(mine).to_contain_text(company)
    screenshot(page, "referent-accueil")

    page.get_by_role("navigation", name="Menu principal").get_by_role("link", name="Dossiers").click()
    expect(page.get_by_role("heading", name="Dossiers entreprises", level=1)).to_be_visible()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(len(COMPANIES))
    expect(rows.filter(has_text=COMPANIES["waiting"])).to_contain_text("Accompagnement en cours")
    expect(rows.filter(has_text=COMPANIES["proposed"])).to_contain_text("Proposée")
    screenshot(page, "referent-liste-dossiers")


def test_the_animators_pages(server, open_as, pilot_site, animator, site):
    page = open_as(animator, f"/pilotage/{site.slug}/")
    red = page.locator(f'[data-case="{pilot_site["waiting"].public_id}"]')
    expect(red).to_have_attribute("data-light", "red")
    expect(red).to_contain_text("2 demandes ouvertes, 1 en retard")
    expect(page.locator('[data-column="proposed"]')).to_contain_text(COMPANIES["proposed"])

    page.get_by_role("link", name="Ordre du jour de la revue hebdomadaire").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Ordre du jour de la revue hebdomadaire — Ancenis"
    )
    agenda = page.locator("[data-agenda]")
    expect(agenda.get_by_role("heading", name=COMPANIES["waiting"])).to_be_visible()
    expect(agenda.get_by_role("heading", name=COMPANIES["proposed"])).to_be_visible()
    screenshot(page, "animateur-ordre-du-jour")

    page.get_by_role("link", name="Revues hebdomadaires").click()
    page.get_by_role("button", name="Ouvrir la revue de la semaine").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Revue hebdomadaire — Ancenis, semaine du")
    item = page.locator("[data-review-item]", has=page.get_by_role("heading", name=COMPANIES["waiting"]))
    item.get_by_text("Noter une décision, une information ou une action").click()
    item.get_by_label("Décision").check()
    item.get_by_label("Ce qui a été dit").fill(
        "Confier la demande de logement à l’Habitat Jeunes dès aujourd’hui."
    )
    item.get_by_role("button", name="Enregistrer").click()
    item = page.locator("[data-review-item]", has=page.get_by_role("heading", name=COMPANIES["waiting"]))
    expect(item.locator("[data-entries]")).to_contain_text("Décision — Confier la demande de logement")
    screenshot(page, "animateur-revue-hebdomadaire")

    page.get_by_role("navigation", name="Menu principal").get_by_role("link", name="Rapport CLEFOP").click()
    expect(page.get_by_role("heading", name="Rapport CLEFOP", level=1)).to_be_visible()
    # The animators see every company of their site: exact figures (3 requests, 2 companies).
    expect(page.locator('[data-row="requests.opened.total"] [data-current]')).to_have_text("3")
    screenshot(page, "animateur-rapport-clefop")


def test_the_observers_pages(server, open_as, pilot_site, observer):
    page = open_as(observer, "/")
    menu = page.get_by_role("navigation", name="Menu principal")
    expect(menu.get_by_role("link", name="Rapport CLEFOP")).to_be_visible()
    # Aggregates only: no case, no task.
    expect(menu.get_by_role("link", name="Dossiers")).to_have_count(0)
    expect(menu.get_by_role("link", name="Tâches")).to_have_count(0)
    expect(page.get_by_role("region", name="Indicateurs des territoires que j’observe")).to_be_visible()

    menu.get_by_role("link", name="Rapport CLEFOP").click()
    expect(page.get_by_role("heading", name="Rapport CLEFOP", level=1)).to_be_visible()
    expect(page.locator("main")).not_to_contain_text(COMPANIES["waiting"])
    # A figure drawn from fewer than 3 companies is masked for an observer.
    expect(page.locator('[data-row="requests.opened.total"] [data-current]')).to_have_text("< 3")
    screenshot(page, "observateur-rapport-clefop")
