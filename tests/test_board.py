"""The status board of a pilot site: columns by case state, a card per company with its traffic
light, filters, counters that always equal the lists they summarise, live updates, and a query
count that does not grow with the number of cases."""

import random
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from viewflow.workflow.models import Task

from casework import services as case_services
from casework.enums import OPEN_CASE_STATES, CaseState, ToolboxCategory
from casework.models import Case
from cockpit import selectors
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    SiteAnimatorFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import board
from workflows import services as request_services
from workflows.business_days import add_business_days
from workflows.flows import ServiceRequestFlow
from workflows.models import RequestStatus, ServiceRequest

pytestmark = pytest.mark.django_db

COLUMN = re.compile(r'data-column="(\w+)".*?data-count>(\d+)<(.*?)</section>', re.S)
CARD = re.compile(r'<li class="board-card[^"]*" data-case="([0-9a-f-]+)" data-light="(\w+)"')


def read_board(html: str) -> dict:
    """{state: (counter, [(case public id, light), …])} as the page shows it."""
    return {state: (int(count), CARD.findall(body)) for state, count, body in COLUMN.findall(html)}


def random_cases(rng, site, other_site, count):
    """Cases in every state, with random referents, needs, request figures and activity dates."""
    referents = []
    for n in range(3):
        user = UserFactory(first_name=f"Référent{n}", last_name="Test")
        organisation = OrganisationFactory(territories=[site.territory])
        MembershipFactory(user=user, organisation=organisation, can_be_referent=True)
        referents.append(user)
    now = timezone.now()
    states = list(CaseState.values)
    for index in range(count):
        case = CaseFactory(
            site=other_site if index % 9 == 8 else site,
            referent=rng.choice(referents),
            state=rng.choice(states),
        )
        for category in rng.sample(list(ToolboxCategory.values), rng.randint(0, 2)):
            NeedFactory(case=case, category=category, created_by=case.referent)
        open_requests = rng.randint(0, 3)
        Case.objects.filter(pk=case.pk).update(
            last_activity_at=now - timedelta(days=rng.randint(0, 30), hours=12),
            open_requests=open_requests,
            overdue_requests=rng.randint(0, open_requests) if rng.random() < 0.3 else 0,
            next_deadline=(
                now + timedelta(days=rng.randint(-3, 6), minutes=30)
                if open_requests and rng.random() < 0.6
                else None
            ),
        )
    return referents


def expected_board(site, thresholds, *, referent=None, category="", overdue=False) -> dict:
    """The board computed by hand, case by case, from the rule's definition."""
    columns = {state: [] for state in OPEN_CASE_STATES}
    for case in Case.objects.filter(site=site).prefetch_related("needs"):
        if case.state not in columns:
            continue
        if referent and case.referent_id != referent.pk:
            continue
        if category and category not in {need.category for need in case.needs.all()}:
            continue
        late = case.overdue_requests > 0 or (
            case.next_deadline is not None and case.next_deadline < thresholds.now
        )
        if overdue and not late:
            continue
        columns[case.state].append((str(case.public_id), selectors.light_of(case, thresholds)))
    return columns


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_counter_equals_the_list_it_summarises_on_random_data(
    client, login, site, other_site, animator, seed
):
    rng = random.Random(seed)
    referents = random_cases(rng, site, other_site, 45)
    login(client, animator)
    url = reverse("board", kwargs={"slug": site.slug})
    for filters in (
        {},
        {"referent": rng.choice(referents).pk},
        {"category": rng.choice(ToolboxCategory.values)},
        {"overdue": "on"},
        {"referent": rng.choice(referents).pk, "overdue": "on"},
    ):
        html = client.get(url, filters).content.decode()
        shown = read_board(html)
        thresholds = selectors.Thresholds.at(timezone.now())
        referent = next((r for r in referents if r.pk == filters.get("referent")), None)
        expected = expected_board(
            site,
            thresholds,
            referent=referent,
            category=filters.get("category", ""),
            overdue="overdue" in filters,
        )
        assert set(shown) == set(OPEN_CASE_STATES)
        for state, (counter, cards) in shown.items():
            assert counter == len(cards), f"{state}: counter {counter} for {len(cards)} cards ({filters})"
            assert sorted(cards) == sorted(expected[state]), f"{state} {filters}"
        all_cards = [card for _, cards in shown.values() for card in cards]
        for light in selectors.LIGHTS:
            total = int(re.search(rf'data-light-total="{light}">(\d+)', html).group(1))
            assert total == sum(1 for _, card_light in all_cards if card_light == light)
        open_total = int(re.search(r"(\d+) dossiers? ouverts?", html).group(1))
        assert open_total == len(all_cards)


def test_a_column_longer_than_the_card_limit_still_counts_every_case(
    client, login, site, other_site, animator, monkeypatch
):
    monkeypatch.setattr(selectors, "CARD_LIMIT", 4)
    for _ in range(7):
        CaseFactory(site=site, active=True)
    stale = CaseFactory(site=site, active=True)
    case_services.record_activity(stale, timezone.now() - timedelta(days=20))
    html = login(client, animator).get(reverse("board", kwargs={"slug": site.slug})).content.decode()
    counter, cards = read_board(html)["active"]
    assert counter == 8 and len(cards) == 4
    assert cards[0] == (str(stale.public_id), "red")  # the most urgent first
    assert "4 de plus" in html


def test_lights_follow_the_rule(site):
    now = timezone.now()
    thresholds = selectors.Thresholds.at(now)
    fresh = dict(last_activity_at=now, overdue_requests=0, next_deadline=None)
    cases = {
        "green": Case(**fresh),
        "idle 15 days": Case(**{**fresh, "last_activity_at": now - timedelta(days=15)}),
        "overdue": Case(**{**fresh, "overdue_requests": 1}),
        "deadline passed": Case(**{**fresh, "next_deadline": now - timedelta(minutes=1)}),
        "deadline in 2 business days": Case(**{**fresh, "next_deadline": add_business_days(now, 2)}),
        "deadline in 3 business days": Case(**{**fresh, "next_deadline": add_business_days(now, 3)}),
    }
    lights = {name: selectors.light_of(case, thresholds) for name, case in cases.items()}
    assert lights == {
        "green": "green",
        "idle 15 days": "red",
        "overdue": "red",
        "deadline passed": "red",
        "deadline in 2 business days": "orange",
        "deadline in 3 business days": "green",
    }


def claim_and_accept(agent, request):
    review = Task.objects.filter(process_id=request.pk, flow_task=ServiceRequestFlow.review).latest("pk")
    request_services.task_claim(actor=agent, task_id=review.pk)
    request_services.request_accept(actor=agent, task_id=review.pk)


def routed_request(site, referent, response_days=2):
    case = CaseFactory(site=site, referent=referent, active=True)
    provider = OrganisationFactory(name="Plateforme mobilité")
    ToolboxServiceFactory(
        category="mobility",
        provider=provider,
        territories=[site.territory],
        response_time_days=response_days,
    )
    agent = UserFactory(username="agent.mobilite")
    MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
    need = NeedFactory(case=case, created_by=referent, category="mobility")
    request = request_services.request_open(
        actor=referent, case=case, need=need, brief="Scooters", category="mobility"
    )
    return case, request, agent


def test_the_request_figures_of_a_card_follow_the_request_steps(site, referent):
    case, request, agent = routed_request(site, referent)
    case.refresh_from_db()
    request.refresh_from_db()
    assert (case.open_requests, case.overdue_requests, case.next_deadline) == (1, 0, request.deadline)
    assert case.red_at == request.deadline  # before 14 days without activity
    claim_and_accept(agent, request)
    case.refresh_from_db()
    assert (case.open_requests, case.overdue_requests, case.next_deadline) == (1, 0, None)
    assert case.red_at == case.last_activity_at + timedelta(days=14)
    request_services.request_cancel(actor=referent, request=request, reason="Plus nécessaire")
    case.refresh_from_db()
    assert (case.open_requests, case.next_deadline) == (0, None)


def test_an_acceptance_moves_the_card_on_the_animators_board(client, login, site, referent, animator):
    case, request, agent = routed_request(site, referent, response_days=1)
    url = reverse("board", kwargs={"slug": site.slug})
    login(client, animator)
    [(card, light)] = read_board(client.get(url).content.decode())["active"][1]
    assert (card, light) == (str(case.public_id), "orange")  # answer due within 2 business days
    claim_and_accept(agent, request)
    partial = client.get(url, headers={"HX-Request": "true"})
    assert partial.templates[0].name == "cockpit/partials/board.html"
    assert read_board(partial.content.decode())["active"][1] == [(str(case.public_id), "green")]
    assert "Dernière activité aujourd’hui" in partial.content.decode()  # not « il y a 0 jour »


def test_who_opens_which_board(
    client, login, site, other_site, referent, agent, observer, animator, admin_user
):
    other_animator = SiteAnimatorFactory(site=other_site).user
    url = reverse("board", kwargs={"slug": site.slug})
    assert login(client, animator).get(url).status_code == 200
    for user in (other_animator, referent, agent, observer):
        assert login(client, user).get(url).status_code == 404
    assert login(client, admin_user).get(url).status_code == 200
    assert login(client, admin_user).get(reverse("board_region")).status_code == 200
    single = login(client, animator).get(reverse("board_region"))
    assert single.status_code == 302 and single.url == url
    assert login(client, referent).get(reverse("board_region")).status_code == 404
    missing = login(client, animator).get(reverse("board", kwargs={"slug": "nulle-part"}))
    assert missing.status_code == 404


def test_bad_filters_are_explained_and_show_every_case(client, login, site, animator):
    CaseFactory(site=site, active=True)
    response = login(client, animator).get(
        reverse("board", kwargs={"slug": site.slug}), {"referent": "<script>", "category": "zzz"}
    )
    assert response.status_code == 200
    assert "Les filtres ne sont pas valides" in response.content.decode()
    assert read_board(response.content.decode())["active"][0] == 1
    assert b"<script>" not in response.content


@pytest.mark.parametrize("url_name", ["board", "board_region"])
def test_board_query_count_is_the_same_at_10_and_120_cases(
    client, login, site, other_site, admin_user, url_name, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    kwargs = {"slug": site.slug} if url_name == "board" else {}
    url = reverse(url_name, kwargs=kwargs)
    login(client, admin_user)
    rng = random.Random(5)
    counts = []
    for size in (10, 120):
        random_cases(rng, site, other_site, size - Case.objects.count())
        client.get(url)  # warm-up (session, content types)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url, {"overdue": "on"}).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_a_request_past_its_deadline_turns_the_card_red_through_the_timer(
    client, login, site, referent, animator
):
    """The deadline timer marks the request overdue: the case's figures follow, and its card is red
    and first in its column."""
    from workflows import timers

    case, request, _agent = routed_request(site, referent)
    calm = CaseFactory(site=site, active=True)
    Task.objects.filter(process_id=request.pk, flow_task_type="TIMER").update(
        scheduled=timezone.now() - timedelta(minutes=1)
    )
    ServiceRequest.objects.filter(pk=request.pk).update(deadline=timezone.now() - timedelta(minutes=1))
    assert timers.sweep() == 1
    case.refresh_from_db()
    assert (case.open_requests, case.overdue_requests) == (1, 1)
    assert case.red_at < timezone.now()
    cards = read_board(
        login(client, animator).get(reverse("board", kwargs={"slug": site.slug})).content.decode()
    )
    assert cards["active"][1] == [(str(case.public_id), "red"), (str(calm.public_id), "green")]


def test_activity_moves_the_moment_a_case_turns_red(site):
    case = CaseFactory(site=site, active=True)
    past = timezone.now() - timedelta(days=30)
    case_services.record_activity(case, past)
    case.refresh_from_db()
    assert case.red_at == past + timedelta(days=14)
    case.last_activity_at = timezone.now()
    case.save(update_fields=["last_activity_at"])  # a service saving the case with its activity
    case.refresh_from_db()
    assert case.red_at == case.last_activity_at + timedelta(days=14)


@pytest.mark.django_db(transaction=True)  # rings leave after commit
def test_an_acceptance_reaches_the_animators_open_board_over_its_socket(
    site, referent, animator, client, login
):
    """The board page listens to its site's events: the agent's acceptance rings it (after commit),
    and the part it then reloads shows the card moved."""
    from asgiref.sync import sync_to_async

    from tests.test_notifications_live import connect, run_async

    case, request, agent = routed_request(site, referent, response_days=1)

    async def scenario():
        socket, connected, _ = await connect(animator)
        assert connected
        await socket.send_json_to({"type": "hello", "last_id": 10**9})
        await sync_to_async(claim_and_accept)(agent, request)
        messages = []
        while True:  # the claim and the acceptance may each ring the board
            message = await socket.receive_json_from(timeout=3)
            messages.append(message)
            if message["type"] == "board":
                break
        await socket.disconnect()
        return messages[-1]

    board_message = run_async(scenario)()
    assert board_message == {"type": "board", "site": site.pk, "case": str(case.public_id)}
    partial = login(client, animator).get(
        reverse("board", kwargs={"slug": site.slug}), headers={"HX-Request": "true"}
    )
    assert read_board(partial.content.decode())["active"][1] == [(str(case.public_id), "green")]


FIGURES = ("open_requests", "overdue_requests", "next_deadline", "red_at", "last_activity_at")


@pytest.mark.parametrize("seed", [4, 5])
def test_the_one_case_refresh_gives_the_figures_of_the_general_refresh(site, referent, seed):
    """`refresh_case` runs a statement compiled once with stand-ins (workflows.board): on requests
    in every stage, overdue or not, with or without deadlines, it must give each case exactly what
    the general `refresh_cases` gives, with and without an activity date."""
    rng = random.Random(seed)
    provider = OrganisationFactory(territories=[site.territory])
    now = timezone.now()
    cases = []
    for _ in range(12):
        case = CaseFactory(site=site, referent=referent, diagnosed=True)
        need = NeedFactory(case=case, created_by=referent, category="mobility")
        for _ in range(rng.randint(0, 4)):
            ServiceRequest.objects.create(
                flow_class=ServiceRequestFlow,
                case=case,
                need=need,
                category="mobility",
                brief="Scooters",
                opened_by=referent,
                provider=provider,
                stage=rng.choice(RequestStatus.values),
                overdue=rng.random() < 0.3,
                deadline=now + timedelta(days=rng.randint(-20, 20), minutes=rng.randint(0, 600))
                if rng.random() < 0.8
                else None,
            )
        Case.objects.filter(pk=case.pk).update(last_activity_at=now - timedelta(days=rng.randint(0, 30)))
        cases.append(case)
    ids = [case.pk for case in cases]

    def figures():
        return {case["pk"]: case for case in Case.objects.filter(pk__in=ids).values("pk", *FIGURES)}

    for activity_at in (None, now - timedelta(hours=rng.randint(1, 48))):
        board.refresh_cases(Case.objects.filter(pk__in=ids), activity_at)
        general = figures()
        Case.objects.filter(pk__in=ids).update(
            open_requests=99, overdue_requests=99, next_deadline=None, red_at=now
        )
        for case in cases:
            board.refresh_case(case.pk, site.pk, case.public_id, activity_at=activity_at)
        assert figures() == general
        assert any(row["open_requests"] for row in general.values())
        assert any(row["next_deadline"] for row in general.values())


def _board_figures(board) -> list:
    return [
        (column.state, column.count, dict(column.lights), [vars(card) for card in column.cards])
        for column in board.columns
    ] + [[(person.pk, person.get_full_name(), person.get_username()) for person in board.referents]]


@pytest.mark.parametrize("seed", [4, 5])
def test_the_compiled_board_is_the_board_of_the_visible_cases(
    site, other_site, animator, admin_user, seed, monkeypatch
):
    """Whoever sees every case of the board's sites gets the board from statements compiled once
    (cockpit.selectors._compiled): the same board, card by card, as the same reads built over the
    user's visible cases, for each filter, at two moments (each call's own dates and values)."""
    from casework import rules

    rng = random.Random(seed)
    referents = random_cases(rng, site, other_site, 40)
    SiteAnimatorFactory(user=animator, site=other_site)
    sites = sorted([site, other_site], key=lambda s: s.pk)
    filters = [
        {},
        {"referent_id": referents[0].pk},
        {"category": ToolboxCategory.values[0]},
        {"overdue_only": True},
        {"referent_id": referents[1].pk, "overdue_only": True, "category": ToolboxCategory.values[1]},
    ]
    real = rules.sees_every_case_of_sites
    for user in (admin_user, animator):
        for moment in (timezone.now(), timezone.now() + timedelta(days=9)):
            for chosen in filters:
                for chosen_sites in (sites, [site]):
                    assert real(user, [s.pk for s in chosen_sites])
                    compiled = selectors.board(user, chosen_sites, now=moment, **chosen)
                    monkeypatch.setattr(rules, "sees_every_case_of_sites", lambda *args: False)
                    built = selectors.board(user, chosen_sites, now=moment, **chosen)
                    monkeypatch.setattr(rules, "sees_every_case_of_sites", real)
                    assert _board_figures(compiled) == _board_figures(built), (user, moment, chosen)
    assert compiled.count and any(column.cards for column in compiled.columns)


def test_every_case_of_the_sites_is_visible_exactly_when_the_rule_says_so(
    site, other_site, animator, admin_user, referent, observer
):
    """`sees_every_case_of_sites`: an administrator, an animator of each site; then the visible
    cases of those sites are all of them."""
    from casework import rules

    for _ in range(3):
        CaseFactory(site=site, active=True)
        CaseFactory(site=other_site, active=True)
    cases = [site.pk], [other_site.pk], [site.pk, other_site.pk]
    for user in (animator, admin_user, referent, observer):
        for site_ids in cases:
            every = set(Case.objects.filter(site_id__in=site_ids).values_list("pk", flat=True))
            visible = set(
                Case.objects.visible_to(user).filter(site_id__in=site_ids).values_list("pk", flat=True)
            )
            if rules.sees_every_case_of_sites(user, site_ids):
                assert visible == every
    assert rules.sees_every_case_of_sites(animator, [site.pk])
    assert not rules.sees_every_case_of_sites(animator, [site.pk, other_site.pk])
    assert rules.sees_every_case_of_sites(admin_user, [site.pk, other_site.pk])
    assert not rules.sees_every_case_of_sites(referent, [site.pk])
    admin_user.accepted_charter_version = ""
    assert not rules.sees_every_case_of_sites(admin_user, [site.pk])
