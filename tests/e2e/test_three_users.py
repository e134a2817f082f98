"""Scenario 1, three users in three browsers at once, each seeing the others' work appear live:
the referent opens a transport request on a case; the agent of the transport organisation sees it
arrive in the queue without reload, takes and accepts it; the referent sees the acceptance (toast
and status) without reload; the animator's board card changes without reload. Then the agent plans
an intervention, records it as done with its outcome and declares the delivery; the referent
validates it (live, again) and moves the case to follow-up, and the animator's card moves to that
column. At the end the case's « Historique » names the actor of every step, and « Qui a consulté ce
dossier » the three people who displayed the case."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.helpers import assert_not_reloaded, board_card, mark_no_reload, timeline_step
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)

pytestmark = pytest.mark.e2e

LIVE = 15_000  # ms: a live update on a machine shared with other test runs


@pytest.fixture
def world(site, referent, animator):
    animator.first_name, animator.last_name = "Nadia", "Roussel"
    animator.save(update_fields=["first_name", "last_name"])
    case = CaseFactory(site=site, referent=referent, active=True, company__name="Transports Loire Ouest")
    provider = OrganisationFactory(name="Mobilité Solidaire 44", territories=[site.territory])
    ToolboxServiceFactory(
        name="Location de scooters", category="mobility", provider=provider, territories=[site.territory]
    )
    agent = UserFactory(username="agent.mobilite", first_name="Yann", last_name="Bodin")
    MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
    NeedFactory(case=case, created_by=referent, category="mobility", description="Trajets domicile-travail")
    return case, agent


def test_a_request_travels_live_between_three_browsers(server, open_as, world, referent, animator):
    case, agent = world
    queue = open_as(agent, "/taches/?vue=file")
    board = open_as(animator, f"/pilotage/{case.site.slug}/")
    for page in (queue, board):
        mark_no_reload(page)
    card = board_card(board, case)
    expect(card).to_have_attribute("data-light", "green")
    expect(card).to_contain_text("0 demande ouverte")
    expect(board.locator('[data-column="active"]').locator(f'[data-case="{case.public_id}"]')).to_be_visible()
    expect(queue.locator("#live-tasks")).not_to_contain_text("Transports Loire Ouest")

    # The referent opens the request from the case page.
    page = open_as(referent, f"/dossiers/{case.public_id}/")
    screenshot(page, "referent-dossier")
    page.get_by_role("link", name="Ouvrir une demande").click()
    page.get_by_label("Besoin").select_option(index=1)
    page.get_by_label("Ou une catégorie").select_option("mobility")
    page.get_by_label("Ce que vous attendez").fill("Deux scooters pour les nouvelles recrues.")
    screenshot(page, "referent-formulaire-demande")
    page.get_by_role("button", name="Envoyer la demande").click()
    expect(page).to_have_url(re.compile(r"/demandes/[0-9a-f-]+/$"))
    expect(page.get_by_text("La demande est adressée à Mobilité Solidaire 44.")).to_be_visible()
    expect(page.locator("#live-request")).to_contain_text("En attente d’une structure partenaire")
    mark_no_reload(page)

    # The animator's card counts the open request, without reload.
    expect(card).to_contain_text("1 demande ouverte", timeout=LIVE)
    expect(card).to_have_attribute("data-light", "green")  # 5 business days to answer

    # The agent's queue shows it without reload; the agent takes it and accepts it.
    row = queue.locator("#live-tasks tr", has_text="Transports Loire Ouest")
    expect(row).to_be_visible(timeout=LIVE)
    expect(row).to_contain_text("Transport et mobilité")
    expect(queue.locator("#notification-toasts")).to_contain_text(
        "Nouvelle demande « Transport et mobilité » pour l’entreprise Transports Loire Ouest", timeout=LIVE
    )
    assert_not_reloaded(queue)
    screenshot(queue, "agent-file-attente")
    row.get_by_role("link").click()
    queue.get_by_role("button", name="Prendre en charge cette demande").click()
    expect(queue.get_by_text("Vous avez pris en charge cette demande.")).to_be_visible()
    screenshot(queue, "agent-demande")
    queue.get_by_role("button", name="Accepter", exact=True).click()
    expect(queue.get_by_text("Vous avez accepté la demande. Planifiez les interventions.")).to_be_visible()

    # The referent, still on the request page, sees the acceptance without reload.
    expect(page.locator("#notification-toasts")).to_contain_text(
        "Mobilité Solidaire 44 a accepté la demande « Transport et mobilité »", timeout=LIVE
    )
    expect(page.locator("#live-request h1")).to_contain_text(
        "Acceptée, en cours de réalisation", timeout=LIVE
    )
    assert_not_reloaded(page)
    # The animator's card still counts one open request, now accepted: no response deadline left.
    expect(card).to_contain_text("1 demande ouverte")
    expect(card).to_have_attribute("data-light", "green")
    assert_not_reloaded(board)
    screenshot(board, "animateur-tableau-de-bord")

    # The agent plans an intervention, then records it as done with its outcome.
    today = timezone.localdate().isoformat()
    plan = queue.get_by_role("group", name="Planifier une intervention")
    plan.get_by_label("Type").select_option(label="Rendez-vous")
    plan.get_by_label("Date prévue").fill(today)
    plan.get_by_label("Notes").fill("Essai des scooters avec les deux recrues.")
    queue.get_by_role("button", name="Planifier", exact=True).click()
    expect(queue.get_by_text("L’intervention est planifiée.")).to_be_visible()
    interventions = queue.get_by_role("region", name="Interventions")
    expect(interventions).to_contain_text("Rendez-vous (Prévue)")
    interventions.get_by_label("Ce qui s’est passé").select_option(label="Réalisée")
    interventions.get_by_label("Résultat").fill("Scooters remis, trajets essayés.")
    interventions.get_by_role("button", name="Enregistrer").click()
    expect(queue.get_by_text("L’intervention est enregistrée.")).to_be_visible()
    expect(interventions).to_contain_text("Rendez-vous (Réalisée)")
    expect(interventions).to_contain_text("Résultat : Scooters remis, trajets essayés.")

    # The agent declares the delivery done.
    deliver = queue.get_by_role("group", name="Déclarer la réalisation terminée")
    deliver.get_by_label("Candidats proposés").fill("2")
    deliver.get_by_label("Embauches").fill("2")
    deliver.get_by_label("Résultat").fill("Deux scooters loués pour trois mois.")
    queue.get_by_role("button", name="Réalisation terminée").click()
    expect(
        queue.get_by_text("La réalisation est déclarée terminée. Le référent va la valider.")
    ).to_be_visible()

    # The referent sees it live and validates.
    expect(page.locator("#live-request h1")).to_contain_text("Réalisée, à valider", timeout=LIVE)
    expect(page.locator("#live-request")).to_contain_text("Deux scooters loués pour trois mois.")
    assert_not_reloaded(page)
    page.get_by_role("button", name="Valider", exact=True).click()
    expect(page.get_by_text("La demande est clôturée.")).to_be_visible()
    expect(page.locator("#live-request h1")).to_contain_text("Validée")

    # No request is open any more on the animator's card.
    expect(card).to_contain_text("0 demande ouverte", timeout=LIVE)

    # The referent moves the case to follow-up: the card moves to that column, live.
    page.get_by_role("link", name="Transports Loire Ouest").first.click()
    expect(page).to_have_url(re.compile(rf"/dossiers/{case.public_id}/$"))
    page.get_by_role("button", name="Passer en suivi").click()
    expect(
        board.locator('[data-column="follow_up"]').locator(f'[data-case="{case.public_id}"]')
    ).to_be_visible(timeout=LIVE)
    expect(board.locator('[data-column="active"]').locator(f'[data-case="{case.public_id}"]')).to_have_count(
        0
    )
    assert_not_reloaded(board)

    # The agent displays the case too (its organisation accepted a request of it: it sees it for good).
    queue.get_by_role("link", name="Transports Loire Ouest").first.click()
    expect(queue.get_by_role("heading", level=1)).to_contain_text("Transports Loire Ouest")

    # The animator opens the case from the board: its history names the actor of every step.
    board_card(board, case).get_by_role("link", name="Transports Loire Ouest").click()
    expect(board).to_have_url(re.compile(rf"/dossiers/{case.public_id}/$"))
    category = "Transport et mobilité"
    expected_steps = [
        (f"Demande « {category} » ouverte", "Claire Durand"),
        (f"Demande « {category} » orientée vers Mobilité Solidaire 44", "Plateforme (automatique)"),
        (f"Demande « {category} » prise en charge par Mobilité Solidaire 44", "Yann Bodin"),
        (f"Demande « {category} » acceptée par Mobilité Solidaire 44", "Yann Bodin"),
        (f"Intervention prévue (demande « {category} »)", "Yann Bodin"),
        (f"Intervention réalisée (demande « {category} »)", "Yann Bodin"),
        (f"Demande « {category} » réalisée par Mobilité Solidaire 44", "Yann Bodin"),
        (f"Demande « {category} » validée", "Claire Durand"),
        ("Dossier passé en suivi", "Claire Durand"),
    ]
    for text, actor in expected_steps:
        expect(timeline_step(board, text)).to_contain_text(f"par {actor}")
    # The outcome of the intervention is in the history as well.
    expect(timeline_step(board, f"Intervention réalisée (demande « {category} »)")).to_contain_text(
        "Rendez-vous : Scooters remis, trajets essayés."
    )

    # « Qui a consulté ce dossier »: the referent, the agent and the animator, most recent first.
    accesses = board.get_by_role("region", name="Qui a consulté ce dossier")
    accesses.get_by_text("3 personnes l’ont consulté").click()
    viewers = accesses.locator("[data-viewers] li")
    expect(viewers).to_have_count(3)
    expect(viewers.nth(0)).to_contain_text("Nadia Roussel")
    expect(viewers.nth(1)).to_contain_text("Yann Bodin")
    expect(viewers.nth(2)).to_contain_text("Claire Durand")
    expect(viewers.nth(2)).to_contain_text("consultations")  # she displayed it more than once
    screenshot(board, "animateur-dossier")
