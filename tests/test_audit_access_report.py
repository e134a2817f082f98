"""« Which companies did this user see between two dates »: the platform administrators' report
of a user's displays (page and CSV export), built from the access chain of the audit trail."""

import csv
import io
import re
from datetime import date, datetime, time, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, override
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import selectors
from audit.models import AuditEntry
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    PilotSiteFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import services as request_services

pytestmark = pytest.mark.django_db

REPORT = reverse("audit_access_report")
EXPORT = reverse("audit_access_report_csv")


@pytest.fixture
def partner_case(site, referent):
    """A diagnosed case of `referent` whose mobility need was routed, as a request, to a provider
    organisation; `partner` is an agent of that organisation (so the case is visible to them)."""
    case = CaseFactory(site=site, referent=referent, diagnosed=True, company__name="Chaudronnerie Ligérienne")
    need = NeedFactory(case=case, created_by=referent, category="mobility")
    provider = OrganisationFactory(name="Plateforme mobilité")
    ToolboxServiceFactory(category="mobility", provider=provider, territories=[site.territory])
    partner = UserFactory(username="partenaire", email="lea.roux@mobilite.example")
    MembershipFactory(user=partner, organisation=provider, can_be_referent=False)
    request_services.request_open(actor=referent, case=case, need=need, brief="Mobilité", category="mobility")
    return case, partner


def at(day, hour=12, minute=0):
    """An aware instant of `day` in the platform's time zone."""
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.get_current_timezone())


def display(user, instance, when):
    """An access entry of `user` on `instance` at `when` (as the case and company pages write them)."""
    return AuditEntry.objects.log_create(
        instance, force_log=True, action=AuditEntry.Action.ACCESS, actor=user, timestamp=when
    )


def query(user, start, end, **extra):
    return {"user": user.username, "start": start.isoformat(), "end": end.isoformat(), **extra}


def test_a_case_opened_by_a_partner_is_listed_in_their_report(client, login, partner_case, admin_user):
    case, partner = partner_case
    login(client, partner)
    assert client.get(reverse("case_detail", kwargs={"public_id": case.public_id})).status_code == 200
    assert (
        client.get(reverse("company_detail", kwargs={"public_id": case.company.public_id})).status_code == 200
    )
    today = timezone.localdate()
    login(client, admin_user)
    response = client.get(REPORT, query(partner, today - timedelta(days=7), today))
    assert response.status_code == 200
    [row] = response.context["page"].object_list
    assert (row.name, row.siret, row.sites, row.displays) == (
        "Chaudronnerie Ligérienne",
        case.company.siret,
        ("Ancenis",),
        2,  # the case page and the company page
    )
    html = response.content.decode()
    for expected in ("Chaudronnerie Ligérienne", case.company.siret, "Ancenis", "partenaire"):
        assert expected in html
    assert f"{EXPORT}?" in html  # the export link keeps the query


def test_displays_outside_the_period_are_left_out_and_the_end_day_is_included(
    client, login, partner_case, admin_user
):
    case, partner = partner_case
    today = timezone.localdate()
    start, end = today - timedelta(days=20), today - timedelta(days=10)
    display(partner, case, at(start - timedelta(days=1), 23, 59))  # the evening before: out
    display(partner, case, at(start, 0, 0))  # first instant of the period: in
    display(partner, case.company, at(end, 23, 59))  # last minute of the end day: in
    display(partner, case, at(end + timedelta(days=1), 0, 0))  # midnight after: out
    login(client, admin_user)
    [row] = client.get(REPORT, query(partner, start, end)).context["page"].object_list
    assert row.displays == 2
    assert timezone.localtime(row.first) == at(start, 0, 0)
    assert timezone.localtime(row.last) == at(end, 23, 59)
    # A period around none of them lists nothing.
    response = client.get(REPORT, query(partner, start - timedelta(days=40), start - timedelta(days=30)))
    assert response.status_code == 200 and list(response.context["page"].object_list) == []


def test_only_that_users_displays_of_cases_and_companies_count(partner_case, referent, admin_user):
    case, partner = partner_case
    today = timezone.localdate()
    other_case = CaseFactory(site=PilotSiteFactory(name="Saumur"), company=case.company)
    display(referent, case, at(today, 9))  # someone else
    display(partner, other_case, at(today, 9))  # the same company on another site
    display(partner, partner, at(today, 9))  # not a company
    [row] = selectors.companies_seen_by(partner, start=today, end=today)
    assert row.displays == 1 and row.sites == ("Ancenis", "Saumur")


def test_rows_are_sorted_by_company_name(partner_case, admin_user):
    case, partner = partner_case
    today = timezone.localdate()
    for name in ("Zinguerie", "atelier Bois", "Menuiserie"):
        display(partner, CaseFactory(company__name=name), at(today, 8))
    display(partner, case, at(today, 8))
    names = [row.name for row in selectors.companies_seen_by(partner, start=today, end=today)]
    assert names == ["atelier Bois", "Chaudronnerie Ligérienne", "Menuiserie", "Zinguerie"]


def test_the_csv_export_reads_back_in_a_french_spreadsheet(client, login, partner_case, admin_user):
    case, partner = partner_case
    today = timezone.localdate()
    display(partner, case, at(today, 8, 15))
    display(partner, case.company, at(today, 9, 30))
    risky = CaseFactory(site=case.site, company__name='=HYPERLINK("http://evil.example","clic")')
    display(partner, risky, at(today, 10))
    login(client, admin_user)
    response = client.get(EXPORT, query(partner, today, today))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="consultations_partenaire_{today:%Y-%m-%d}_{today:%Y-%m-%d}.csv"'
    )
    assert response.content.startswith(b"\xef\xbb\xbf")  # BOM
    header, *rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))
    with override("fr"):
        assert header == [
            gettext(label)
            for label in ("Company", "SIRET", "Pilot sites", "Displays", "First display", "Last display")
        ]
    assert rows == [
        [
            "'" + '=HYPERLINK("http://evil.example","clic")',  # not run as a formula
            risky.company.siret,
            risky.site.name,
            "1",
            f"{today:%Y-%m-%d} 10:00",
            f"{today:%Y-%m-%d} 10:00",
        ],
        [
            "Chaudronnerie Ligérienne",
            case.company.siret,
            "Ancenis",
            "2",
            f"{today:%Y-%m-%d} 08:15",
            f"{today:%Y-%m-%d} 09:30",
        ],
    ]


@pytest.mark.parametrize("first_char", ["=", "+", "-", "@"])
def test_every_formula_start_is_neutralised(client, login, partner_case, admin_user, first_char):
    case, partner = partner_case
    today = timezone.localdate()
    display(partner, CaseFactory(company__name=f"{first_char}1+1"), at(today, 10))
    login(client, admin_user)
    content = client.get(EXPORT, query(partner, today, today)).content.decode("utf-8-sig")
    [_header, row] = list(csv.reader(io.StringIO(content), delimiter=";"))
    assert row[0] == f"'{first_char}1+1"


def test_looking_at_someones_displays_is_itself_recorded(client, login, partner_case, admin_user):
    _case, partner = partner_case
    today = timezone.localdate()
    login(client, admin_user)
    page = client.get(REPORT, query(partner, today, today))
    client.get(EXPORT, query(partner, today, today))
    recorded = AuditEntry.objects.get_for_object(partner).filter(action=AuditEntry.Action.ACCESS)
    assert [(entry.actor, entry.additional_data) for entry in recorded.order_by("pk")] == [
        (admin_user, {"page": "consultations"}),
        (admin_user, {"page": "consultations_csv"}),
    ]
    with override("fr"):
        notice = gettext(
            "This search is itself recorded in the audit trail: who looked at whose displays, and when."
        )
    assert notice in page.content.decode()


@pytest.mark.parametrize("url", [REPORT, EXPORT])
def test_everyone_but_platform_administrators_gets_404(
    client, login, url, partner_case, referent, agent, animator, observer
):
    _case, partner = partner_case
    staff = UserFactory(is_staff=True)  # Django staff, not a platform administrator
    today = timezone.localdate()
    for user in (partner, referent, agent, animator, observer, staff):
        login(client, user)
        assert client.get(url, query(partner, today, today)).status_code == 404, user
        assert client.get(url).status_code == 404, user
    assert not AuditEntry.objects.get_for_object(partner).filter(action=AuditEntry.Action.ACCESS).exists()


def test_the_link_is_in_the_navigation_of_administrators_only(client, login, admin_user, referent):
    assert REPORT in login(client, admin_user).get(reverse("home")).content.decode()
    assert REPORT not in login(client, referent).get(reverse("home")).content.decode()


def test_the_empty_form_has_a_default_period(client, login, admin_user):
    response = login(client, admin_user).get(REPORT)
    assert response.status_code == 200
    today = timezone.localdate()
    assert f'value="{today:%Y-%m-%d}"' in response.content.decode()
    assert "page" not in response.context


def test_a_user_is_found_by_email_address_too(client, login, partner_case, admin_user):
    _case, partner = partner_case
    today = timezone.localdate()
    response = login(client, admin_user).get(
        REPORT, {"user": " LEA.ROUX@mobilite.example ", "start": today, "end": today}
    )
    assert response.status_code == 200 and response.context["subject"] == partner


def _bad_inputs():
    today = timezone.localdate()
    iso = today.isoformat
    return {
        "unknown user": ({"user": "personne@nulle.part", "start": iso(), "end": iso()}, "user"),
        "no user": ({"user": "", "start": iso(), "end": iso()}, "user"),
        "no dates": ({"user": "partenaire"}, "start"),
        "no end": ({"user": "partenaire", "start": iso()}, "end"),
        "start after end": (
            {"user": "partenaire", "start": iso(), "end": (today - timedelta(days=1)).isoformat()},
            "end",
        ),
        "more than 366 days": (
            {"user": "partenaire", "start": (today - timedelta(days=366)).isoformat(), "end": iso()},
            "end",
        ),
        "future": (
            {"user": "partenaire", "start": iso(), "end": (today + timedelta(days=1)).isoformat()},
            "end",
        ),
        "end of time": ({"user": "partenaire", "start": iso(), "end": "9999-12-31"}, "end"),
        "long ago": ({"user": "partenaire", "start": "1900-01-01", "end": iso()}, "start"),
        "not a date": ({"user": "partenaire", "start": "2026-13-45", "end": iso()}, "start"),
        "garbage": ({"user": "partenaire", "start": "<script>", "end": "0" * 500}, "end"),
        "huge user": ({"user": "x" * 5000, "start": iso(), "end": iso()}, "user"),
    }


@pytest.mark.parametrize("case_name", sorted(_bad_inputs()))
@pytest.mark.parametrize("url", [REPORT, EXPORT])
def test_bad_input_gives_a_form_error_never_a_server_error(
    client, login, partner_case, admin_user, url, case_name
):
    _case, partner = partner_case
    params, field = _bad_inputs()[case_name]
    response = login(client, admin_user).get(url, params)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert field in response.context["form"].errors
    assert 'class="fr-error-text"' in response.content.decode()  # shown next to the field
    assert not AuditEntry.objects.get_for_object(partner).filter(action=AuditEntry.Action.ACCESS).exists()


def test_a_shared_email_address_asks_for_the_username(client, login, admin_user):
    UserFactory(username="jdupont", email="contact@asso.example")
    UserFactory(username="mdupont", email="contact@asso.example")
    today = timezone.localdate()
    response = login(client, admin_user).get(
        REPORT, {"user": "contact@asso.example", "start": today, "end": today}
    )
    assert response.status_code == 200 and "user" in response.context["form"].errors
    response = client.get(REPORT, {"user": "mdupont", "start": today, "end": today})
    assert response.context["subject"].username == "mdupont"


# --- Query counts -----------------------------------------------------------------------------------


def _seen(partner, companies, displays_each, day):
    for _ in range(companies):
        case = CaseFactory()
        for number in range(displays_each):
            display(partner, case if number % 2 else case.company, at(day, 9, number))


def test_the_selector_reads_in_three_queries_whatever_the_volume(partner_case, django_assert_num_queries):
    _case, partner = partner_case
    today = timezone.localdate()
    selectors.companies_seen_by(partner, start=today, end=today)  # content types cached
    _seen(partner, 1, 1, today)
    with django_assert_num_queries(3):  # entries grouped by company, companies, their sites
        assert len(selectors.companies_seen_by(partner, start=today, end=today)) == 1
    _seen(partner, 12, 6, today)
    with django_assert_num_queries(3):
        rows = selectors.companies_seen_by(partner, start=today, end=today)
    assert len(rows) == 13 and sum(row.displays for row in rows) == 1 + 72


def test_the_report_pages_by_keyset_and_counts_the_whole_period(client, login, partner_case, admin_user):
    """60 companies: « Suivant » gives the 10 after the first 50, in the same order as the export;
    the totals are the period's; a company deleted since comes last."""
    from casework.models import Company
    from tests.factories import CompanyFactory

    _case, partner = partner_case
    today = timezone.localdate()
    _seen(partner, 59, 2, today)
    gone = CompanyFactory(name="Aaa disparue")
    display(partner, gone, at(today, 10))
    Company.objects.filter(pk=gone.pk).delete()
    whole = selectors.companies_seen_by(partner, start=today, end=today)
    assert len(whole) == 60 and not whole[-1].exists and whole[-1].company_id == gone.pk
    login(client, admin_user)
    first = client.get(REPORT, query(partner, today, today))
    html = first.content.decode()
    assert "60 entreprises\u00a0; 119 consultations en tout." in html
    rows = list(first.context["page"].object_list)
    following = re.search(r'fr-pagination__link--next[^"]*" href="([^"]+)"', html).group(1)
    following = following.replace("&amp;", "&")
    assert "user=partenaire" in following
    second = client.get(REPORT + following)
    rows += list(second.context["page"].object_list)
    assert [row.company_id for row in rows] == [row.company_id for row in whole]
    assert "Entreprise supprimée" in second.content.decode()
    assert "60 entreprises" in second.content.decode()
    assert client.get(REPORT + following.replace("apres=", "apres=x")).status_code == 200


# Session, user, the looked-up user, the report's three reads (the entries grouped by company, the
# companies' names, the sites of the page's companies), the administrator's own access entry
# (savepoint, last position of the access chain, insert, release); then the page's header: the
# notification bell and the user's roles (memberships, animated sites, observed territories).
REPORT_QUERIES = 14
EXPORT_QUERIES = 10  # the same without the header (and the sites of every company)


@pytest.mark.parametrize(("url", "expected"), [(REPORT, REPORT_QUERIES), (EXPORT, EXPORT_QUERIES)])
def test_the_pages_query_count_does_not_grow(
    client, login, partner_case, admin_user, url, expected, django_assert_num_queries
):
    _case, partner = partner_case
    today = timezone.localdate()
    login(client, admin_user)
    client.get(url, query(partner, today, today))  # steady state (content types, the chain's anchor)
    _seen(partner, 1, 1, today)
    with django_assert_num_queries(expected):
        assert client.get(url, query(partner, today, today)).status_code == 200
    _seen(partner, 60, 4, today)  # more than one page of the report
    with django_assert_num_queries(expected):
        assert client.get(url, query(partner, today, today)).status_code == 200


def test_an_exact_username_wins_over_another_case_and_an_address(client, login, admin_user):
    exact = UserFactory(username="Jean")
    UserFactory(username="jean")
    UserFactory(username="homonyme", email="Jean")  # an address equal to the typed text
    today = timezone.localdate()
    response = login(client, admin_user).get(REPORT, {"user": "Jean", "start": today, "end": today})
    assert response.context["subject"] == exact
    response = client.get(REPORT, {"user": "JEAN", "start": today, "end": today})
    assert "user" in response.context["form"].errors  # two usernames differ only by case


def _recent_day(days_ago: int) -> str:
    return (timezone.localdate() - timedelta(days=days_ago)).isoformat()


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    user=st.one_of(st.just("partenaire"), st.just("LEA.ROUX@mobilite.example"), st.text(max_size=300)),
    start=st.one_of(
        st.integers(0, 400).map(_recent_day), st.dates().map(date.isoformat), st.text(max_size=40)
    ),
    end=st.one_of(
        st.integers(-2, 400).map(_recent_day), st.dates().map(date.isoformat), st.text(max_size=40)
    ),
    url=st.sampled_from([REPORT, EXPORT]),
)
def test_any_input_gives_the_form_or_the_report_never_a_server_error(
    client, login, partner_case, admin_user, user, start, end, url
):
    """Random, unicode, out-of-range input: the form with its errors, or the report (page or file)."""
    login(client, admin_user)
    response = client.get(url, {"user": user, "start": start, "end": end})
    assert response.status_code == 200
    if response["Content-Type"].startswith("text/csv"):
        assert url == EXPORT and response.content.startswith(b"\xef\xbb\xbf")
    else:
        assert response.context["form"].is_valid() == ("subject" in response.context)
