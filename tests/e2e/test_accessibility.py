"""Accessibility as users meet it (issue « Prove it as users would », §3).

1. axe-core, injected into Chromium, finds no "serious" or "critical" violation on the pages each
   role uses: the login page (anonymous), home, case list, case detail, request form, request
   page, task list (agent and referent), status board, CLEFOP report, weekly reviews (list and a
   review's page) and notifications. No axe rule is disabled here.
2. Scenario 1's main steps work with the keyboard only (Tab, Shift+Tab, Enter, Space, arrows): the
   referent goes from the case page to the request form, fills it and sends it; the partner agent
   opens the request from the queue, takes it and accepts it. Each step checks which element has
   the focus (and that the focus is visible) before pressing a key on it.

axe-core comes from npm (`make e2e-tools`: node_modules/axe-core/axe.min.js); when it is absent the
axe test skips locally and fails in CI (`missing`)."""

import re

import pytest
from playwright.sync_api import expect

from cockpit import services as cockpit_services
from cockpit.models import EntryKind
from tests import live
from tests.e2e.conftest import missing
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import services as request_services

pytestmark = pytest.mark.e2e

AXE = live.ROOT / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
# Generous: two cores shared with other browsers.
SLOW = 20_000


@pytest.fixture
def scenario(site, referent):
    """Scenario 1's world: a case of the referent with two needs, a transport organisation serving
    the territory (one service) and its agent."""
    case = CaseFactory(site=site, referent=referent, active=True, company__name="Transports Loire Ouest")
    provider = OrganisationFactory(name="Mobilité Solidaire 44", territories=[site.territory])
    ToolboxServiceFactory(
        name="Location de scooters", category="mobility", provider=provider, territories=[site.territory]
    )
    agent = UserFactory(username="agent.mobilite", first_name="Yann", last_name="Bodin")
    MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
    need = NeedFactory(
        case=case, created_by=referent, category="mobility", description="Trajets domicile-travail"
    )
    NeedFactory(case=case, created_by=referent, category="housing", description="Logement des saisonniers")
    return {"case": case, "agent": agent, "need": need}


@pytest.fixture
def world(scenario, site, referent, animator):
    """Something on every page: scenario 1's world with one request already open (tasks,
    notifications, a card with a request on the board), another company proposed, and this week's
    review opened (its agenda not empty) with a decision recorded."""
    CaseFactory(site=site, referent=referent, company__name="Boulangerie Bernard")
    request = request_services.request_open(
        actor=referent,
        case=scenario["case"],
        need=scenario["need"],
        brief="Un minibus pour l'équipe de nuit.",
        category="mobility",
    )
    weekly = cockpit_services.review_open(actor=animator, site=site)
    cockpit_services.review_entry_add(
        actor=animator, item=weekly.items.first(), kind=EntryKind.DECISION, text="Relancer l'entreprise."
    )
    return {**scenario, "request": request, "review": weekly}


def axe_source() -> str:
    if not AXE.exists():
        missing(f"axe-core absent ({AXE}): make e2e-tools")
    return AXE.read_text(encoding="utf-8")


def blocking_violations(page, source: str) -> list[dict]:
    """Run axe-core on the page as it is now; its "serious" and "critical" violations.

    The script is evaluated through the DevTools protocol (`page.evaluate`), which the page's
    content security policy does not govern: an inline <script> added to the page would be refused."""
    page.wait_for_load_state("load")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    results = page.evaluate("async () => await window.axe.run(document, {resultTypes: ['violations']})")
    return [violation for violation in results["violations"] if violation["impact"] in BLOCKING]


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            lines.append(f"    {node['target']}: {summary[:300]}")
    return "\n".join(lines)


def test_no_serious_or_critical_axe_violation(chromium, server, open_as, world, site, referent, animator):
    source = axe_source()
    case, agent, weekly, request = world["case"], world["agent"], world["review"], world["request"]
    anonymous = chromium.new_context(base_url=server.url, locale="fr-FR", timezone_id="Europe/Paris")
    anonymous.set_default_timeout(SLOW)
    tabs = {None: anonymous.new_page()}
    found = {}

    def audit(user, path, state=""):
        """Open `path` as `user` (one tab per user, reused) and run axe on it."""
        if user not in tabs:
            tabs[user] = open_as(user, path)
            tabs[user].context.set_default_timeout(SLOW)
        page = tabs[user]
        if path:
            page.goto(path)
            assert page.url.endswith(path), f"{path} redirected to {page.url}"
        violations = blocking_violations(page, source)
        if violations:
            who = user.username if user else "anonymous"
            found[f"{path or page.url}{f' [{state}]' if state else ''} ({who})"] = describe(violations)
        return page

    try:
        # axe really runs here: a field without a label, added on purpose, is reported (critical).
        page = tabs[None]
        page.goto("/connexion/")
        page.evaluate(source)
        page.evaluate("() => document.querySelector('main').append(document.createElement('input'))")
        assert "label" in {violation["id"] for violation in blocking_violations(page, source)}
        audit(None, "/connexion/")
        for path in (
            "/",
            "/dossiers/",
            f"/dossiers/{case.public_id}/",
            f"/demandes/{request.public_id}/",
            "/taches/",
            "/notifications/",
        ):
            audit(referent, path)
        # The request form, empty then sent empty: its errors.
        page = audit(referent, f"/dossiers/{case.public_id}/demandes/nouvelle/")
        page.get_by_role("button", name="Envoyer la demande").click()
        expect(page.locator(".fr-error-text, .fr-alert--error").first).to_be_visible(timeout=SLOW)
        audit(referent, "", "form errors")

        for path in (
            "/",
            "/taches/",
            "/taches/?vue=file",
            f"/demandes/{request.public_id}/",
            "/notifications/",
        ):
            audit(agent, path)
        # The request taken: the accept and decline forms.
        page = tabs[agent]
        page.goto(f"/demandes/{request.public_id}/")
        page.get_by_role("button", name="Prendre en charge cette demande").click()
        expect(page.get_by_role("button", name="Accepter", exact=True)).to_be_visible(timeout=SLOW)
        audit(agent, "", "taken")

        for path in (
            "/",
            f"/pilotage/{site.slug}/",
            "/rapport-clefop/",
            f"/pilotage/{site.slug}/revues/",
            f"/pilotage/{site.slug}/revues/{weekly.pk}/",
            "/taches/",
            "/notifications/",
        ):
            audit(animator, path)

        # The dark scheme (the pages follow the system's): the DSFR's colours and ours.
        for page in tabs.values():
            page.emulate_media(color_scheme="dark")
        audit(None, "/connexion/", "dark")
        audit(referent, f"/dossiers/{case.public_id}/", "dark")
        audit(agent, "/taches/?vue=file", "dark")
        for path in (
            f"/pilotage/{site.slug}/",
            f"/pilotage/{site.slug}/revues/{weekly.pk}/",
            "/rapport-clefop/",
        ):
            audit(animator, path, "dark")
        # axe does not measure the text of the SVG charts: they are drawn in the light scheme's
        # colours (#161616 text), on a white background whatever the scheme.
        charts = tabs[animator].locator("svg.report-chart")
        expect(charts.first).to_be_visible(timeout=SLOW)
        backgrounds = charts.evaluate_all(
            "nodes => nodes.map(node => getComputedStyle(node).backgroundColor)"
        )
        assert backgrounds and set(backgrounds) == {"rgb(255, 255, 255)"}, backgrounds
    finally:
        anonymous.close()
    assert not found, "Serious or critical axe violations:\n" + "\n".join(
        f"{where}\n{text}" for where, text in found.items()
    )


# What has the focus: its role-ish tag, its accessible text (label of a form field), whether the
# focus is drawn (an outline or a box shadow) and whether it is on screen, inside <main> or not.
FOCUS = """() => {
  const e = document.activeElement;
  if (!e || e === document.body || e === document.documentElement) { return null; }
  const box = e.getBoundingClientRect();
  // The DSFR draws some focus rings on a pseudo-element (links of .fr-enlarge-link blocks).
  const ring = (style) => (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0)
    || (style.boxShadow && style.boxShadow !== "none");
  const label = e.labels && e.labels.length ? e.labels[0].innerText : "";
  return {
    tag: e.tagName.toLowerCase(),
    text: (label || e.getAttribute("aria-label") || e.innerText || e.value || "")
      .replace(/\\s+/g, " ").trim(),
    href: e.getAttribute("href") || "",
    drawn: [null, "::before", "::after"].some((pseudo) => ring(getComputedStyle(e, pseudo))),
    onScreen: box.width > 0 && box.height > 0 && box.bottom > 0 && box.top < window.innerHeight,
    inMain: !!e.closest("main"),
  };
}"""


def focused(page) -> dict | None:
    return page.evaluate(FOCUS)


def press_until(page, wanted, *, key="Tab", limit=40, in_main=True) -> dict:
    """Press `key` until the focused element satisfies `wanted(focus)`; every element met on the
    way must show its focus, be on screen (no invisible stop, no focus lost) and, after the skip
    link, stay in the page's content (`in_main`)."""
    path = []
    for _ in range(limit):
        page.keyboard.press(key)
        focus = focused(page)
        assert focus is not None, f"focus lost after {key} (path: {path})"
        path.append(f"{focus['tag']} « {focus['text'][:40]} »")
        assert focus["drawn"], f"focus not visible on {path[-1]} (path: {' → '.join(path)})"
        assert focus["onScreen"], f"focused element off screen: {path[-1]} (path: {' → '.join(path)})"
        assert focus["inMain"] or not in_main, f"focus left the content: {' → '.join(path)}"
        if wanted(focus):
            return focus
    raise AssertionError(f"not reached with {key} in {limit} presses: {' → '.join(path)}")


def skip_to_content(page) -> None:
    """From the top of a freshly loaded page: the first Tab reaches the skip link « Aller au
    contenu », Enter moves the reading position into <main>."""
    focus = press_until(page, lambda f: True, limit=1, in_main=False)
    assert focus["text"] == "Aller au contenu" and focus["href"] == "#content", focus
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#content$"), timeout=SLOW)


def text_is(text):
    return lambda focus: focus["text"] == text


def label_is(label):
    """A form field by its label, « (facultatif) » or not."""
    return lambda focus: focus["text"] in (label, f"{label} (facultatif)")


def test_scenario_one_with_the_keyboard_only(server, open_as, scenario, referent):
    case, agent = scenario["case"], scenario["agent"]

    # The referent, on the case page, reaches « Ouvrir une demande » through the page's content.
    page = open_as(referent, f"/dossiers/{case.public_id}/")
    page.context.set_default_timeout(SLOW)
    skip_to_content(page)
    focus = press_until(page, text_is("Ouvrir une demande"))
    assert focus["tag"] == "a" and focus["inMain"], focus
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/demandes/nouvelle/(#content)?$"), timeout=SLOW)

    # The form, from its first field to its button: arrows choose in the lists, Shift+Tab goes back.
    skip_to_content(page)
    focus = press_until(page, label_is("Besoin"))
    assert focus["tag"] == "select", focus
    page.keyboard.press("ArrowDown")
    expect(page.get_by_label("Besoin")).to_have_value(str(scenario["need"].pk), timeout=SLOW)
    focus = press_until(page, label_is("Ou une catégorie"))
    assert focus["tag"] == "select", focus
    category = page.get_by_label("Ou une catégorie")
    for _ in range(12):
        if category.input_value() == "mobility":
            break
        page.keyboard.press("ArrowDown")
    expect(category).to_have_value("mobility", timeout=SLOW)
    focus = press_until(page, label_is("Ce que vous attendez de la structure partenaire"))
    assert focus["tag"] == "textarea", focus
    page.keyboard.type("Deux scooters pour les nouvelles recrues.")
    focus = press_until(page, text_is("Envoyer la demande"))
    assert focus["tag"] == "button", focus
    # One step back lands on the field just before the button, and forward again.
    back = press_until(page, lambda f: True, key="Shift+Tab", limit=1)
    assert back["tag"] == "input" and back["text"].startswith("Échéance souhaitée"), back
    press_until(page, text_is("Envoyer la demande"), limit=1)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/demandes/[0-9a-f-]+/(#content)?$"), timeout=SLOW)
    expect(page.locator("#live-request")).to_contain_text(
        "Deux scooters pour les nouvelles recrues.", timeout=SLOW
    )
    request = case.requests.get()
    assert request.category == "mobility" and request.need_id == scenario["need"].pk

    # The agent, from the queue: the request's link, « Prendre en charge » (Space), « Accepter ».
    queue = open_as(agent, "/taches/?vue=file")
    queue.context.set_default_timeout(SLOW)
    expect(queue.locator("#live-tasks")).to_contain_text("Transports Loire Ouest", timeout=SLOW)
    skip_to_content(queue)
    focus = press_until(queue, lambda f: f["href"] == f"/demandes/{request.public_id}/")
    assert focus["tag"] == "a" and focus["inMain"], focus
    queue.keyboard.press("Enter")
    expect(queue).to_have_url(re.compile(rf"/demandes/{request.public_id}/(#content)?$"), timeout=SLOW)
    skip_to_content(queue)
    focus = press_until(queue, text_is("Prendre en charge cette demande"))
    assert focus["tag"] == "button", focus
    queue.keyboard.press("Space")
    expect(queue.get_by_role("button", name="Accepter", exact=True)).to_be_visible(timeout=SLOW)
    skip_to_content(queue)
    focus = press_until(queue, text_is("Accepter"))
    assert focus["tag"] == "button", focus
    queue.keyboard.press("Enter")
    expect(queue.locator("#live-request")).to_contain_text("Acceptée", timeout=SLOW)
    request.refresh_from_db()
    assert request.provider.name == "Mobilité Solidaire 44" and request.accepted_at is not None

    # Back on the referent's page, the acceptance arrived (live or on the next load).
    page.reload()
    expect(page.locator("#live-request")).to_contain_text("Acceptée", timeout=SLOW)
