"""Scenario 1, three users in three browsers at once, each seeing the others' work appear live:
the referent opens a transport request on a case; the agent of the transport organisation sees it
arrive in the queue without reload, takes and accepts it; the referent sees the acceptance (toast
and status) without reload; the animator's board card changes without reload."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(site, referent, animator):
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
    card = board.locator(f'[data-case="{case.public_id}"]')
    expect(card).to_be_visible()
    expect(card).to_contain_text("0")  # no open request yet
    expect(queue.locator("#live-tasks")).not_to_contain_text("Transports Loire Ouest")

    # The referent opens the request.
    page = open_as(referent, f"/dossiers/{case.public_id}/")
    page.get_by_role("link", name="Ouvrir une demande").click()
    page.get_by_label("Besoin").select_option(index=1)
    page.get_by_label("Ou une catégorie").select_option("mobility")
    page.get_by_label("Ce que vous attendez").fill("Deux scooters pour les nouvelles recrues.")
    page.get_by_role("button", name="Envoyer la demande").click()
    expect(page).to_have_url(re.compile(r"/demandes/[0-9a-f-]+/$"))
    request_url = page.url

    # The agent's queue shows it without reload; the agent takes it and accepts it.
    expect(queue.locator("#live-tasks")).to_contain_text("Transports Loire Ouest", timeout=15_000)
    screenshot(queue, "agent-file-attente")
    queue.locator("#live-tasks").get_by_role("link").first.click()
    queue.get_by_role("button", name="Prendre en charge").click()
    queue.get_by_role("button", name="Accepter").click()

    # The referent, still on the request page, sees the acceptance without reload.
    assert page.url == request_url
    expect(page.locator("#notification-toasts")).to_contain_text("accept", timeout=15_000)
    expect(page.locator("#live-request")).to_contain_text("Acceptée", timeout=15_000)
    # The animator's card changed without reload.
    expect(card).to_contain_text("1", timeout=15_000)
    screenshot(board, "animateur-tableau-de-bord")
