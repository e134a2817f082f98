"""Small helpers shared by the end-to-end scenarios (tests/e2e/test_three_users.py,
tests/e2e/test_routing_and_deadlines.py, tests/e2e/test_guide_captures.py, tests/e2e/test_faults.py,
tests/e2e/test_live_focus.py)."""

import re

from playwright.sync_api import Locator, Page, expect

# The moment a page was loaded, kept in the page's own JavaScript world: a reload (or any
# navigation) starts a new world without it. Proves that what the test then sees came live.
_MARK = "__e2e_loaded_once"


def mark_no_reload(page: Page) -> None:
    page.evaluate(f"window.{_MARK} = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate(f"window.{_MARK} === true"), f"{page.url} was reloaded or left"


def board_card(page: Page, case) -> Locator:
    """The case's card on an open status board."""
    return page.locator(f'[data-case="{case.public_id}"]')


def timeline_step(page: Page, text: str) -> Locator:
    """The item of the case's « Historique » whose sentence is `text` (exactly one)."""
    return page.locator("#historique li").filter(has_text=text)


def described(scope: Page | Locator, term: str) -> Locator:
    """The <dd> that follows the <dt> reading exactly `term` (« Structure partenaire »…)."""
    return scope.locator(f'dt:text-is("{term}") + dd')


def open_request(page: Page, brief: str) -> None:
    """From the case page, the referent opens a transport request (by category) for the case's
    first need, and lands on the request's page."""
    page.get_by_role("link", name="Ouvrir une demande").click()
    page.get_by_label("Besoin").select_option(index=1)
    page.get_by_label("Ou une catégorie").select_option("mobility")
    page.get_by_label("Ce que vous attendez").fill(brief)
    page.get_by_role("button", name="Envoyer la demande").click()
    expect(page).to_have_url(re.compile(r"/demandes/[0-9a-f-]+/$"))
