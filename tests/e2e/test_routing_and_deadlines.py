"""Scenarios 2 and 3, in real browsers against a real server.

2. A decline with a reason re-routes the request to the next organisation: two organisations offer
   transport on the company's territory; the agent of the first one declines with a reason; the
   agent of the second one sees the request arrive in their queue without reload, and the
   referent's request page shows, without reload, the reason and the new partner.
3. A request left unanswered past its response deadline turns red on the board and reaches the
   animators: the deadline timer is moved into the past, the timers run in another process
   (`manage.py run_timers --once`, as cron does in production); the animator's card turns red and
   the notification arrives, both without reload. This crosses processes: Redis is needed."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect
from viewflow.workflow.models import Task

from tests.e2e.conftest import screenshot
from tests.e2e.helpers import assert_not_reloaded, board_card, described, mark_no_reload
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import services
from workflows.models import ServiceRequest

pytestmark = pytest.mark.e2e

LIVE = 15_000  # ms: a live update on a machine shared with other test runs
CATEGORY = "Transport et mobilité"


def transport_provider(site, name, agent_name):
    """An organisation offering transport on the site's territory, and its agent."""
    provider = OrganisationFactory(name=name, territories=[site.territory])
    ToolboxServiceFactory(
        name=f"Mobilité — {name}", category="mobility", provider=provider, territories=[site.territory]
    )
    first_name, last_name = agent_name.split()
    agent = UserFactory(
        username=f"{first_name.lower()}.{last_name.lower()}", first_name=first_name, last_name=last_name
    )
    MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
    return provider, agent


@pytest.fixture
def routed(site, referent, animator):
    """A transport request of an active case, routed by category. Both organisations have no open
    request: routing takes them by name, so « Mobilité Solidaire 44 » first."""
    animator.first_name, animator.last_name = "Nadia", "Roussel"
    animator.save(update_fields=["first_name", "last_name"])
    first, first_agent = transport_provider(site, "Mobilité Solidaire 44", "Yann Bodin")
    second, second_agent = transport_provider(site, "Roues de secours Ancenis", "Inès Morel")
    case = CaseFactory(site=site, referent=referent, active=True, company__name="Menuiserie Erdre et Loire")
    need = NeedFactory(
        case=case, created_by=referent, category="mobility", description="Trajets des apprentis"
    )
    request = services.request_open(
        actor=referent,
        case=case,
        need=need,
        brief="Une solution de transport pour deux apprentis.",
        category="mobility",
    )
    assert request.provider == first
    return request, (first, first_agent), (second, second_agent)


def test_a_declined_request_goes_live_to_the_next_organisation(server, open_as, routed, referent):
    request, (first, first_agent), (second, second_agent) = routed
    detail = f"/demandes/{request.public_id}/"
    reason = "Nos scooters sont tous loués jusqu’en mars."

    # The second organisation's queue, open before anything happens: nothing for them yet.
    other_queue = open_as(second_agent, "/taches/?vue=file")
    expect(other_queue.locator("#live-tasks")).to_contain_text("Rien ici pour l’instant.")
    mark_no_reload(other_queue)
    # The referent watches the request page.
    page = open_as(referent, detail)
    expect(described(page, "Structure partenaire")).to_have_text("Mobilité Solidaire 44")
    mark_no_reload(page)

    # The first organisation's agent takes the request from the queue and declines it, with a reason.
    queue = open_as(first_agent, "/taches/?vue=file")
    queue.locator("#live-tasks tr", has_text="Menuiserie Erdre et Loire").get_by_role("link").click()
    queue.get_by_role("button", name="Prendre en charge cette demande").click()
    decline = queue.get_by_role("group", name="Décliner", exact=True)
    decline.get_by_label("Motif").select_option(label="Pas de disponibilité pour le moment")
    decline.get_by_label("Précisions").fill(reason)
    screenshot(queue, "agent-decliner")
    queue.get_by_role("button", name="Décliner la demande").click()
    # The agent is told where the request went, and is back on the queue: the case is no longer
    # theirs to see.
    expect(
        queue.get_by_text("Vous avez décliné la demande ; elle est adressée à une autre structure.")
    ).to_be_visible()
    expect(queue.get_by_role("heading", name="Tâches", level=1)).to_be_visible()
    expect(queue.locator("#live-tasks")).not_to_contain_text("Menuiserie Erdre et Loire")
    assert queue.goto(detail).status == 404

    # The second organisation's agent sees it arrive, without reload.
    row = other_queue.locator("#live-tasks tr", has_text="Menuiserie Erdre et Loire")
    expect(row).to_be_visible(timeout=LIVE)
    expect(row).to_contain_text("Roues de secours Ancenis")
    expect(other_queue.locator("#notification-toasts")).to_contain_text(
        f"Nouvelle demande « {CATEGORY} » pour l’entreprise Menuiserie Erdre et Loire", timeout=LIVE
    )
    assert_not_reloaded(other_queue)

    # The referent sees the decline, its reason and the new partner, without reload.
    expect(page.locator("#notification-toasts")).to_contain_text(
        f"Mobilité Solidaire 44 a décliné la demande « {CATEGORY} » de l’entreprise"
        " Menuiserie Erdre et Loire : Pas de disponibilité pour le moment.",
        timeout=LIVE,
    )
    live = page.locator("#live-request")
    expect(described(live, "Structure partenaire")).to_have_text("Roues de secours Ancenis", timeout=LIVE)
    declined = live.get_by_role("region", name="Historique").locator("li", has_text="Déclinée")
    expect(declined).to_contain_text("Yann Bodin · Mobilité Solidaire 44")
    expect(declined).to_contain_text(f"Pas de disponibilité pour le moment — {reason}")
    routed_again = live.get_by_role("region", name="Historique").locator(
        "li", has_text="Roues de secours Ancenis"
    )
    expect(routed_again).to_contain_text("Orientée vers une structure partenaire")
    assert_not_reloaded(page)
    screenshot(page, "referent-demande-reorientee")

    # The second organisation can take it from there.
    row.get_by_role("link").click()
    expect(other_queue.get_by_role("button", name="Prendre en charge cette demande")).to_be_visible()


def test_an_unanswered_request_turns_red_and_reaches_the_animators(
    server, needs_redis, open_as, run_command, routed, animator
):
    request, (first, _agent), _second = routed
    case = request.case
    board = open_as(animator, f"/pilotage/{case.site.slug}/")
    card = board_card(board, case)
    expect(card).to_contain_text("1 demande ouverte")
    expect(card).to_have_attribute("data-light", "green")
    expect(board.locator('[data-light-total="red"]')).to_have_text("0 en rouge")
    bell = board.locator("#notification-count")
    unread = int(bell.inner_text())
    mark_no_reload(board)

    # Nobody answered: the response deadline is moved into the past, and the timers run in another
    # process, as `run_timers` does in production.
    past = timezone.now() - timedelta(minutes=1)
    assert Task.objects.filter(process_id=request.pk, flow_task_type="TIMER").update(scheduled=past) == 1
    ServiceRequest.objects.filter(pk=request.pk).update(deadline=past)
    assert "1 minuterie(s) déclenchée(s)." in run_command("run_timers", "--once")

    # The animator's card turns red, without reload, and says the request is late.
    expect(card).to_have_attribute("data-light", "red", timeout=LIVE)
    expect(card).to_contain_text("1 demande ouverte, 1 en retard")
    expect(card).to_contain_text("En retard")
    expect(board.locator('[data-light-total="red"]')).to_have_text("1 en rouge")
    # The notification arrives live: a toast and the bell's count.
    expect(board.locator("#notification-toasts")).to_contain_text(
        f"La demande « {CATEGORY} » pour l’entreprise Menuiserie Erdre et Loire n’a pas été acceptée"
        " dans le délai de réponse : les animateurs vont la réattribuer.",
        timeout=LIVE,
    )
    expect(bell).to_have_text(str(unread + 1))
    assert_not_reloaded(board)
    screenshot(board, "animateur-tableau-de-bord-retard")

    # The request waits for the animators: the task is in their queue.
    board.goto("/taches/?vue=file")
    row = board.locator("#live-tasks tr", has_text="Menuiserie Erdre et Loire")
    expect(row).to_contain_text("en retard")
    row.get_by_role("link").click()
    expect(board.get_by_role("heading", level=1)).to_contain_text("En attente des animateurs — en retard")
    expect(board.get_by_label("Structure partenaire")).to_be_visible()
    screenshot(board, "animateur-demande-en-retard")
