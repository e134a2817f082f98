"""Small helpers shared by the end-to-end scenarios (tests/e2e/test_three_users.py,
tests/e2e/test_routing_and_deadlines.py, tests/e2e/test_guide_captures.py)."""

from playwright.sync_api import Locator, Page

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
