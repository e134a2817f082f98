"""The CLEFOP report: its figures equal the ones computed by hand on a fixed story of five
companies on two sites, told through the services at chosen moments; the XLSX and CSV exports hold
the same figures; observers see « < 3 » for every figure drawn from fewer than 3 companies and
nothing else of the platform; bad input is a French form error; the number of queries does not
grow with the data."""

import csv
import io
import re
from datetime import date, datetime
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from casework import services as case_services
from casework.enums import CaseOutcome, CaseState, ToolboxCategory
from cockpit import report as report_module
from cockpit.report import clefop_report, percentile, previous_period
from cockpit.report_exports import lines
from tests.factories import (
    CaseFactory,
    InterventionFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    SiteAnimatorFactory,
    TerritoryObserverFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import services as request_services
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.models import DeclineReason
from workflows.selectors import open_task
from workflows.timers import sweep

pytestmark = pytest.mark.django_db

START, END = date(2026, 3, 1), date(2026, 3, 31)
QUERY = {"start": "2026-03-01", "end": "2026-03-31"}
LT3 = "< 3"


class Clock:
    """`timezone.now()` (hence auto_now_add, the services' stamps, the deadline timers) at a
    chosen local moment."""

    def __init__(self):
        self.now = None

    def at(self, month, day, hour=10, minute=0):
        self.now = timezone.make_aware(datetime(2026, month, day, hour, minute))  # noqa: DTZ001 (made aware)


@pytest.fixture
def world(site, other_site, referent, other_referent, animator):
    providers = {}
    for key, name, category in (
        ("mob", "Plateforme mobilité", ToolboxCategory.MOBILITY),
        ("rec", "Groupement d'employeurs", ToolboxCategory.RECRUITMENT),
    ):
        organisation = OrganisationFactory(name=name, territories=[site.territory, other_site.territory])
        ToolboxServiceFactory(
            category=category,
            provider=organisation,
            territories=[site.territory, other_site.territory],
            response_time_days=5,
        )
        agent = UserFactory(username=f"agent-{key}")
        MembershipFactory(user=agent, organisation=organisation, can_be_referent=False)
        providers[key] = SimpleNamespace(organisation=organisation, agent=agent)
    return SimpleNamespace(
        site=site,
        other_site=other_site,
        referent=referent,
        other_referent=other_referent,
        animator=animator,
        other_animator=SiteAnimatorFactory(site=other_site).user,
        mob=providers["mob"],
        rec=providers["rec"],
    )


def _task(request, node):
    return open_task(request, node).pk


def _accept(provider, request):
    request_services.task_claim(actor=provider.agent, task_id=_task(request, FLOW.review))
    request_services.request_accept(actor=provider.agent, task_id=_task(request, FLOW.review))


def _decline(provider, request, reason):
    request_services.task_claim(actor=provider.agent, task_id=_task(request, FLOW.review))
    request_services.request_decline(actor=provider.agent, task_id=_task(request, FLOW.review), reason=reason)


def _open(case, need):
    return request_services.request_open(
        actor=case.referent, case=case, need=need, brief="Demande", category=need.category
    )


def _case(w, site, **kwargs):
    referent = w.referent if site == w.site else w.other_referent
    return CaseFactory(site=site, referent=referent, **kwargs)


def tell_the_story(w, monkeypatch):
    """Previous period (29 Jan – 28 Feb 2026) and current period (1 – 31 Mar 2026); no public
    holiday in either. Companies A, B, C, E on `site` (Ancenis), D on `other_site` (Saumur)."""
    clock = Clock()
    with monkeypatch.context() as patch:
        patch.setattr(timezone, "now", lambda: clock.now)
        # --- previous period: company A, one mobility request, accepted, delivered, validated.
        clock.at(2, 2, 9)
        case_a = _case(w, w.site, diagnosed=True)
        need_a = NeedFactory(case=case_a, category="mobility", created_by=case_a.referent)
        clock.at(2, 2, 10)  # Monday
        ra = _open(case_a, need_a)
        clock.at(2, 4, 15)  # Wednesday: 14/24 + 1 + 15/24 = 2.2083 business days
        _accept(w.mob, ra)
        clock.at(2, 10)
        done = request_services.intervention_plan(
            actor=w.mob.agent, request=ra, kind="meeting", planned_on=date(2026, 2, 20)
        )
        clock.at(2, 20)
        request_services.intervention_record(
            actor=w.mob.agent, intervention=done, status="done", outcome="OK"
        )
        clock.at(2, 23)
        request_services.request_deliver(
            actor=w.mob.agent, task_id=_task(ra, FLOW.deliver), result_text="Fait", hires=1, trainings=0
        )
        clock.at(2, 25)
        request_services.request_validate(
            actor=case_a.referent, task_id=_task(ra, FLOW.validate), accept=True
        )

        # --- current period.
        clock.at(3, 2, 9)  # Monday
        case_b = _case(w, w.site, diagnosed=True)
        case_c = _case(w, w.site, diagnosed=True)
        case_d = _case(w, w.other_site, diagnosed=True)
        _case(w, w.site)  # E: proposed only
        need_b = NeedFactory(case=case_b, category="recruitment", created_by=case_b.referent)
        need_c = NeedFactory(case=case_c, category="recruitment", created_by=case_c.referent)
        need_c2 = NeedFactory(case=case_c, category="mobility", created_by=case_c.referent)
        need_d = NeedFactory(case=case_d, category="recruitment", created_by=case_d.referent)
        need_d2 = NeedFactory(case=case_d, category="mobility", created_by=case_d.referent)
        clock.at(3, 2, 10)
        rb, rc, rd, rd2, rf = (
            _open(c, n)
            for c, n in (
                (case_b, need_b),
                (case_c, need_c),
                (case_d, need_d),
                (case_d, need_d2),
                (case_c, need_c2),
            )
        )
        clock.at(3, 3, 10)  # 1 business day
        _accept(w.rec, rb)
        _decline(w.mob, rd2, DeclineReason.OUT_OF_SCOPE)
        clock.at(3, 4, 13)  # 14/24 + 1 + 13/24 = 2.125 business days
        _accept(w.rec, rc)
        clock.at(3, 5, 10)
        _decline(w.rec, rd, DeclineReason.NO_CAPACITY)
        clock.at(3, 10, 10)  # rf's deadline (9 March, 10:00) has passed
        assert sweep() >= 1
        clock.at(3, 16)
        plans = [
            (w.rec, rb, date(2026, 3, 18), "done"),
            (w.rec, rc, date(2026, 3, 20), "done"),
            (w.rec, rc, date(2026, 3, 27), "cancelled"),
        ]
        planned = [
            (
                provider,
                request_services.intervention_plan(
                    actor=provider.agent, request=request, kind="meeting", planned_on=day
                ),
                status,
            )
            for provider, request, day, status in plans
        ]
        clock.at(3, 20, 18)
        for provider, intervention, status in planned:
            request_services.intervention_record(
                actor=provider.agent, intervention=intervention, status=status, outcome="Fait"
            )
        InterventionFactory(case=case_d, planned_on=date(2026, 3, 30))  # still planned
        InterventionFactory(case=case_d, planned_on=date(2026, 4, 2))  # after the period
        clock.at(3, 23)
        request_services.request_deliver(
            actor=w.rec.agent, task_id=_task(rb, FLOW.deliver), result_text="Fait", hires=2, trainings=1
        )
        clock.at(3, 24)
        request_services.request_deliver(
            actor=w.rec.agent, task_id=_task(rc, FLOW.deliver), result_text="Fait", hires=3, trainings=0
        )
        clock.at(3, 25)
        case_services.case_transition(
            actor=w.animator,
            case=case_a,
            name="close",
            expected_state=CaseState.ACTIVE,
            outcome=CaseOutcome.PARTLY_MET,
        )


def _zero_rows(prefix, values, total=None):
    return {f"{prefix}.{value}": (0, 0) for value in values} | ({f"{prefix}.total": total} if total else {})


# The figures of every site (administrator), computed by hand from the story: (current, previous).
EXPECTED = {
    "companies.proposed": (4, 1),  # B C D E / A
    "companies.enrolled": (3, 1),  # B C D / A
    "companies.closed": (1, 0),  # A, closed on 25 March
    **_zero_rows("companies.closed", CaseOutcome.values),
    "companies.closed.partly_met": (1, 0),
    **_zero_rows("needs", ToolboxCategory.values, total=(5, 1)),
    "needs.recruitment": (3, 0),
    "needs.mobility": (2, 1),
    **_zero_rows("requests.opened", ToolboxCategory.values, total=(5, 1)),
    "requests.opened.recruitment": (3, 0),
    "requests.opened.mobility": (2, 1),
    "requests.routed": (5, 1),
    "requests.accepted": (2, 1),
    "requests.overdue": (1, 0),  # rf
    **_zero_rows("declines", DeclineReason.values, total=(2, 0)),
    "declines.no_capacity": (1, 0),
    "declines.out_of_scope": (1, 0),
    # median of (1, 2.125) = 1.5625; 90th percentile = 1 + 0.9 × 1.125 = 2.0125; previous: 2.2083
    "delays.median": (1.6, 2.2),
    "delays.p90": (2.0, 2.2),
    "delays.bin.0-1": (0, 0),
    "delays.bin.1-2": (1, 0),
    "delays.bin.2-3": (1, 1),
    "delays.bin.3-5": (0, 0),
    "delays.bin.5-10": (0, 0),
    "delays.bin.10+": (0, 0),
    "interventions.planned": (3, 1),  # 18 (done), 20 (done), 30 March (planned); 27 cancelled
    "interventions.done": (2, 1),
    "outcomes.hires": (5, 1),
    "outcomes.trainings": (1, 0),
}


def expected_partners(w):
    mob, rec = w.mob.organisation.pk, w.rec.organisation.pk
    return {
        # Groupement d'employeurs: rb, rc, rd routed in March, all answered (2 accepted, 1 declined).
        f"partners.{rec}.routed": (3, 0),
        f"partners.{rec}.rate": (100.0, None),
        # Plateforme mobilité: rd2 (declined) and rf (never answered) in March; ra in February.
        f"partners.{mob}.routed": (2, 1),
        f"partners.{mob}.rate": (50.0, 100.0),
    }


@pytest.fixture
def story(world, monkeypatch):
    tell_the_story(world, monkeypatch)
    return world


def test_previous_period_has_the_same_length_and_ends_the_day_before():
    assert previous_period(START, END) == (date(2026, 1, 29), date(2026, 2, 28))
    assert previous_period(date(2026, 3, 2), date(2026, 3, 2)) == (date(2026, 3, 1), date(2026, 3, 1))


def test_percentile_interpolates_between_closest_ranks():
    assert percentile([1.0], 0.9) == 1.0
    assert percentile([1.0, 2.125], 0.9) == pytest.approx(2.0125)
    assert percentile([4, 1, 3, 2, 5], 0.5) == 3
    assert percentile(list(range(1, 11)), 0.9) == pytest.approx(9.1)


def test_every_figure_equals_the_hand_computed_one(story, admin_user):
    report = clefop_report(admin_user, [story.site, story.other_site], START, END, all_sites=True)
    assert not report.masked
    assert report.values() == EXPECTED | expected_partners(story)
    # Section order and the partners' order (by name).
    assert [section.key for section in report.sections] == [
        "companies",
        "needs",
        "requests",
        "declines",
        "delays",
        "interventions",
        "outcomes",
        "partners",
    ]
    assert [row.label for row in report.section("partners").rows][0].startswith("Groupement")


def test_one_site_counts_only_its_companies(story, animator):
    report = clefop_report(animator, [story.site], START, END)
    values = report.values()
    assert not report.masked  # the animator of the site sees the exact figures
    assert values["companies.proposed"] == (3, 1)  # B C E / A
    assert values["companies.enrolled"] == (2, 1)
    assert values["needs.total"] == (3, 1)
    assert values["requests.routed"] == (3, 1)  # rb rc rf
    assert values["declines.total"] == (0, 0)
    assert values["outcomes.hires"] == (5, 1)


def test_the_page_shows_the_figures_and_both_charts(client, login, story, admin_user):
    response = login(client, admin_user).get(reverse("clefop_report"), QUERY)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-row="companies.proposed"' in html
    row = html.split('data-row="delays.median"', 1)[1].split("</tr>", 1)[0]
    assert "1,6" in row and "2,2" in row  # French decimal comma
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="report-chart" role="img"') == 2
    assert '<title id="chart-categories-title">' in html and '<desc id="chart-delays-desc">' in html
    assert " style=" not in html.split("<svg", 1)[1]  # the content security policy refuses inline styles


def test_xlsx_export_opens_with_openpyxl_and_holds_the_figures(client, login, story, admin_user):
    response = login(client, admin_user).get(reverse("clefop_report_xlsx"), QUERY)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    assert 'filename="rapport-clefop_sites_2026-03-01_2026-03-31.xlsx"' in response["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = [row for row in sheet.iter_rows(values_only=True)]
    header = next(index for index, row in enumerate(rows) if row[1] == "Indicateur")
    table = {(row[0], row[1]): (row[3], row[4]) for row in rows[header + 1 :]}
    report = clefop_report(admin_user, [story.site, story.other_site], START, END, all_sites=True)
    assert len(table) == len(report.values())
    for (section, label, _unit, current, previous), (key, expected) in zip(
        lines(report), report.values().items(), strict=True
    ):
        assert table[(section, label)] == (current, previous) == expected, key
    assert table[("Entreprises", "Entreprises proposées")] == (4, 1)
    # Numbers are number cells.
    assert isinstance(table[("Délai d’acceptation (jours ouvrés)", "Délai médian d’acceptation")][0], float)


def _csv_rows(response):
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:]), delimiter=";"))


def test_csv_export_holds_the_figures(client, login, story, admin_user):
    response = login(client, admin_user).get(reverse("clefop_report_csv"), QUERY)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = _csv_rows(response)
    header = next(index for index, row in enumerate(rows) if len(row) > 1 and row[1] == "Indicateur")
    table = {(row[0], row[1]): (row[3], row[4]) for row in rows[header + 1 :]}
    assert table[("Entreprises", "Entreprises proposées")] == ("4", "1")
    assert table[("Délai d’acceptation (jours ouvrés)", "Délai médian d’acceptation")] == ("1,6", "2,2")
    mob = story.mob.organisation.name
    partners = "Taux de réponse par organisation partenaire"
    assert table[(partners, f"{mob}\u00a0: demandes reçues")] == ("2", "1")
    assert table[(partners, f"{mob}\u00a0: demandes reçues — Taux de réponse")] == (
        "50,0",
        "100,0",
    )
    assert all(len(row) == 5 for row in rows[header:])


# --- Observers: small counts suppressed, nothing else of the platform ------------------------------


def test_observers_see_less_than_3_for_figures_from_fewer_than_3_companies(client, login, story, observer):
    report = clefop_report(observer, [story.site], START, END)
    values = report.values()
    assert report.masked
    assert values["companies.proposed"] == (3, LT3)  # B C E / A
    assert values["companies.enrolled"] == (LT3, LT3)  # B C / A
    assert values["companies.closed"] == (LT3, 0)  # nothing drawn from no company is hidden
    assert values["needs.total"] == (LT3, LT3)  # 3 needs, but of 2 companies
    assert values["needs.recruitment"] == (LT3, 0)
    assert values["requests.routed"] == (LT3, LT3)  # rb rc rf: 3 requests of B and C / ra of A
    assert values["delays.median"] == (LT3, LT3)
    assert values["delays.p90"] == (LT3, LT3)
    assert values["outcomes.hires"] == (LT3, LT3)
    mob = story.mob.organisation.pk
    assert values[f"partners.{mob}.rate"] == (LT3, LT3)
    assert all(
        figure.suppressed == (0 < figure.companies < 3)
        for row in report.rows()
        for figure in (row.current, row.previous)
    )


def test_suppression_reaches_the_page_and_both_exports(client, login, story, observer):
    login(client, observer)
    html = client.get(reverse("clefop_report"), {**QUERY, "site": story.site.slug}).content.decode()
    row = html.split('data-row="companies.enrolled"', 1)[1].split("</tr>", 1)[0]
    assert "&lt; 3" in row and "2" not in row.replace("data-current", "").replace("data-previous", "")
    assert "moins de 3 entreprises" in html
    sheet = load_workbook(io.BytesIO(client.get(reverse("clefop_report_xlsx"), QUERY).content)).active
    cells = {row[1]: (row[3], row[4]) for row in sheet.iter_rows(values_only=True) if len(row) > 4}
    assert cells["Entreprises inscrites"] == (LT3, LT3)
    rows = _csv_rows(client.get(reverse("clefop_report_csv"), QUERY))
    assert ["Entreprises", "Entreprises inscrites", "nombre", LT3, LT3] in rows


def test_animators_and_administrators_see_exact_small_counts(story, animator, admin_user):
    for user in (animator, admin_user):
        values = clefop_report(user, [story.site], START, END).values()
        assert values["companies.enrolled"] == (2, 1)
        assert values["delays.median"] == (1.6, 2.2)


def test_an_animator_of_one_site_who_observes_another_gets_the_other_masked(story, animator):
    TerritoryObserverFactory(user=animator, territory=story.other_site.territory)
    assert not clefop_report(animator, [story.site], START, END).masked
    assert clefop_report(animator, [story.other_site], START, END).masked
    assert clefop_report(animator, [story.site, story.other_site], START, END).masked


@pytest.mark.parametrize(
    ("url_name", "kwargs"),
    [
        ("case_detail", lambda story, case: {"public_id": case.public_id}),
        ("company_detail", lambda story, case: {"public_id": case.company.public_id}),
        ("request_detail", lambda story, case: {"public_id": case.requests.first().public_id}),
        ("board", lambda story, case: {"slug": story.site.slug}),
    ],
)
def test_an_observer_gets_404_on_every_case_page(client, login, story, observer, url_name, kwargs):
    case = story.site.cases.filter(requests__isnull=False).first()
    response = login(client, observer).get(reverse(url_name, kwargs=kwargs(story, case)))
    assert response.status_code == 404
    assert client.get(reverse("board_region")).status_code == 404
    assert client.get(reverse("case_list")).context["total"] == 0


def test_only_report_readers_see_the_link_and_the_page(client, login, story, observer, referent):
    assert 'href="/rapport-clefop/"' in login(client, observer).get(reverse("home")).content.decode()
    assert 'href="/rapport-clefop/"' not in login(client, referent).get(reverse("home")).content.decode()
    assert client.get(reverse("clefop_report")).status_code == 404


def test_the_menu_marks_the_report_and_not_the_board_as_current(client, login, story, animator):
    html = login(client, animator).get(reverse("clefop_report"), QUERY).content.decode()
    current = re.findall(r'<a class="fr-nav__link" href="([^"]+)" aria-current="page"', html)
    assert current == [reverse("clefop_report")]


# --- Bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"start": "2026-03-31", "end": "2026-03-01"}, "end", "La date de fin doit être"),
        ({"start": "2023-01-01", "end": "2026-03-01"}, "end", "de 731 jours au plus"),
        ({"start": "garbage", "end": "2026-03-01"}, "start", "Saisissez une date valide"),
        ({"start": "1900-01-01", "end": "2026-03-01"}, "start", "à partir du"),
        ({"start": "2026-01-01", "end": "9999-12-31"}, "end", "au plus tard le"),
        ({**QUERY, "site": "saumur"}, "site", "Choisissez l’un des sites de la liste"),
        ({**QUERY, "site": "nowhere"}, "site", "Choisissez l’un des sites de la liste"),
    ],
)
def test_bad_input_is_a_french_form_error(client, login, story, animator, query, field, message):
    login(client, animator)
    for url_name in ("clefop_report", "clefop_report_xlsx", "clefop_report_csv"):
        response = client.get(reverse(url_name), query)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/html")
        form = response.context["form"]
        assert field in form.errors
        assert message in " ".join(form.errors[field]), form.errors


def test_a_forbidden_site_and_a_missing_one_get_the_same_answer(client, login, story, observer):
    login(client, observer)
    forbidden = client.get(reverse("clefop_report"), {**QUERY, "site": story.other_site.slug})
    missing = client.get(reverse("clefop_report"), {**QUERY, "site": "nowhere"})
    assert forbidden.context["form"].errors == missing.context["form"].errors
    assert story.other_site.name not in forbidden.content.decode()


def test_without_a_query_the_page_shows_the_last_three_months(client, login, story, animator):
    response = login(client, animator).get(reverse("clefop_report"))
    assert response.status_code == 200
    report = response.context["report"]
    assert report.end == timezone.localdate() and (report.end - report.start).days == 91


# --- Queries ----------------------------------------------------------------------------------------


def _queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_number_of_queries_does_not_grow_with_the_data(client, login, world, admin_user, monkeypatch):
    login(client, admin_user)
    url = f"{reverse('clefop_report')}?start=2026-03-01&end=2026-03-31"
    tell_the_story(world, monkeypatch)
    once = _queries(client, url)
    tell_the_story(world, monkeypatch)  # every company, need, request and intervention twice
    twice = _queries(client, url)
    assert once == twice
    values = clefop_report(admin_user, [world.site, world.other_site], START, END).values()
    assert values["companies.proposed"] == (8, 2) and values["requests.routed"] == (10, 2)
    # The report itself: a fixed number of queries.
    with CaptureQueriesContext(connection) as queries:
        clefop_report(admin_user, [world.site, world.other_site], START, END)
    assert len(queries) == 12


def test_module_constants_are_the_documented_ones():
    assert report_module.MIN_COMPANIES == 3


def test_the_charts_are_well_formed_svg(client, login, story, admin_user):
    html = login(client, admin_user).get(reverse("clefop_report"), QUERY).content.decode()
    charts = re.findall(r"<svg .*?</svg>", html, re.S)
    assert len(charts) == 2
    for chart in charts:
        root = ElementTree.fromstring(chart)
        assert root.find("{http://www.w3.org/2000/svg}title").text
        assert root.find("{http://www.w3.org/2000/svg}desc").text
        assert all("style" not in element.attrib for element in root.iter())


def test_names_never_become_formulas_nor_markup(client, login, story, admin_user):
    name = '=HYPERLINK("http://evil.example")<script>alert(1)</script>'
    type(story.mob.organisation).objects.filter(pk=story.mob.organisation.pk).update(name=name)
    login(client, admin_user)
    html = client.get(reverse("clefop_report"), QUERY).content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    sheet = load_workbook(io.BytesIO(client.get(reverse("clefop_report_xlsx"), QUERY).content)).active
    labels = [row[1] for row in sheet.iter_rows(values_only=True) if row[1] and "HYPERLINK" in str(row[1])]
    assert labels and all(label.startswith("'=") for label in labels)
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    rows = _csv_rows(client.get(reverse("clefop_report_csv"), QUERY))
    labels = [row[1] for row in rows if len(row) > 1 and "HYPERLINK" in row[1]]
    assert labels and all(label.startswith("'=") for label in labels)
