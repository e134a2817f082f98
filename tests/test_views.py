"""The pages, as users reach them: content, refusals in plain French, and query counts that do
not grow with the data."""

import re
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from casework import services
from casework.enums import CaseState
from casework.models import Case, CaseTransition, Company, Need
from casework.pagination import encode_cursor
from tests.factories import (
    CaseFactory,
    CompanyFactory,
    InterventionFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    PilotSiteFactory,
    SiteAnimatorFactory,
    ToolboxServiceFactory,
    UserFactory,
    make_siret,
)

pytestmark = pytest.mark.django_db


def alerts(response):
    """The texts of the DSFR alerts (flash messages and form errors) on a page."""
    html = response.content.decode()
    found = re.findall(r'class="fr-alert[^"]*"[^>]*>\s*(.*?)</div>', html, re.S)
    return [re.sub(r"<[^>]+>|\s+", " ", text).strip() for text in found]


def field_errors(response):
    return [
        re.sub(r"\s+", " ", text).strip()
        for text in re.findall(r'<li class="fr-error-text">(.*?)</li>', response.content.decode(), re.S)
    ]


def count_queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


# --- Login, charter, language ----------------------------------------------------------------


def test_login_page_is_french_and_logs_in(client, referent):
    page = client.get(reverse("login"))
    assert "Se connecter" in page.content.decode()
    response = client.post(reverse("login"), {"username": "referent", "password": "Test-password-2026"})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_wrong_password_is_refused_in_french(client, referent):
    response = client.post(reverse("login"), {"username": "referent", "password": "nope"})
    assert response.status_code == 200
    assert "Saisissez un nom d’utilisateur et un mot de passe valides" in response.content.decode()


def test_charter_comes_first_and_is_recorded(client, login, referent, case):
    newcomer = UserFactory(charter=False)
    MembershipFactory(user=newcomer, organisation=case.referent_organisation)
    login(client, newcomer)
    detail = reverse("case_detail", kwargs={"public_id": case.public_id})
    response = client.get(detail)
    assert response.status_code == 302 and response.url.startswith(reverse("charter"))

    page = client.get(response.url)
    assert "Charte de confidentialité" in page.content.decode()
    # Not ticking the box changes nothing.
    refused = client.post(reverse("charter"), {"version": "2026-11"}, follow=True)
    assert any("cocher" in text for text in alerts(refused))
    newcomer.refresh_from_db()
    assert newcomer.accepted_charter_version == ""

    accepted = client.post(reverse("charter"), {"accept": "yes", "version": "2026-11", "next": "/dossiers/"})
    assert accepted.url == "/dossiers/"
    newcomer.refresh_from_db()
    assert newcomer.accepted_charter_version == "2026-11"
    assert newcomer.charter_acceptances.get().version == "2026-11"


def test_charter_ignores_an_external_next_url(client, login):
    login(client, UserFactory(charter=False))
    response = client.post(
        reverse("charter"), {"accept": "yes", "version": "2026-11", "next": "https://evil.example/"}
    )
    assert response.url == reverse("home")


def test_english_is_available(client, login, referent):
    login(client, referent)
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert "Propose a company" in client.get(reverse("home")).content.decode()


# --- Home pages per role ---------------------------------------------------------------------


def test_referent_home_lists_their_open_cases(client, login, referent, case):
    CaseFactory(referent=referent, site=case.site, closed=True, company__name="Ancienne Scierie")
    html = login(client, referent).get(reverse("home")).content.decode()
    assert "Les entreprises dont je suis référent" in html
    assert case.company.name in html
    assert "Ancienne Scierie" not in html  # closed cases are not "open cases"


def test_animator_home_shows_proposals_and_places(client, login, animator, case):
    html = login(client, animator).get(reverse("home")).content.decode()
    assert "Propositions en attente de votre décision" in html
    assert case.company.name in html
    assert "0 / 15" in html  # places taken / cap


def test_observer_home_shows_aggregates_only(client, login, observer, site):
    CaseFactory(site=site, active=True, company__name="Tonnellerie Secrète")
    html = login(client, observer).get(reverse("home")).content.decode()
    assert "Tonnellerie Secrète" not in html
    assert "&lt; 3" in html  # one company: shown as "< 3"


def test_user_without_role_is_told_so(client, login):
    html = login(client, UserFactory()).get(reverse("home")).content.decode()
    assert "pas encore de rôle" in html


def test_home_query_count_is_constant(client, login, referent, animator, site):
    login(client, animator)
    CaseFactory.create_batch(3, site=site, referent=referent)
    small = count_queries(client, reverse("home"))
    CaseFactory.create_batch(30, site=site, referent=referent)
    assert count_queries(client, reverse("home")) == small


# --- Case list -------------------------------------------------------------------------------


def test_case_list_filters_and_searches(client, login, animator, site, referent):
    CaseFactory(
        site=site, referent=referent, company__name="Boulangerie Lemoine", company__siret=make_siret(900)
    )
    CaseFactory(site=site, referent=referent, enrolled=True, company__name="Garage du Centre")
    other = CaseFactory(company__name="Hors Site")  # another site: not visible to this animator
    login(client, animator)
    html = client.get(reverse("case_list")).content.decode()
    assert "Boulangerie Lemoine" in html and "Garage du Centre" in html
    assert other.company.name not in html

    by_state = client.get(reverse("case_list"), {"state": CaseState.ENROLLED}).content.decode()
    assert "Garage du Centre" in by_state and "Boulangerie Lemoine" not in by_state

    by_name = client.get(reverse("case_list"), {"q": "lemoine"}).content.decode()
    assert "Boulangerie Lemoine" in by_name and "Garage du Centre" not in by_name

    siret = make_siret(900)
    by_siret = client.get(reverse("case_list"), {"q": f"{siret[:3]} {siret[3:9]}"}).content.decode()
    assert "Boulangerie Lemoine" in by_siret and "Garage du Centre" not in by_siret

    by_site = client.get(reverse("case_list"), {"site": site.pk}).content.decode()
    assert "Garage du Centre" in by_site


def test_case_list_htmx_returns_the_table_only(client, login, animator, case):
    html = login(client, animator).get(reverse("case_list"), HTTP_HX_REQUEST="true").content.decode()
    assert case.company.name in html
    assert "<html" not in html


def test_case_list_bad_filter_is_explained(client, login, animator, case):
    response = login(client, animator).get(reverse("case_list"), {"state": "nonsense"}, follow=True)
    assert response.status_code == 200
    assert any("filtres" in text for text in alerts(response))


def _listed(html):
    """The case pages linked from the case table, in order."""
    table = html.split("<tbody>")[1].split("</tbody>")[0] if "<tbody>" in html else ""
    return re.findall(r'<a href="/dossiers/([0-9a-f-]+)/">', table)


def _link(html, kind):
    """The href of a pagination link (first, prev, next, last), or None when it is not offered."""
    found = re.search(rf'class="fr-pagination__link fr-pagination__link--{kind}[^"]*" href="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def _same_instant(cases):
    """Give every case the same last activity: only the id then orders them (the order's last key)."""
    Case.objects.filter(pk__in=[case.pk for case in cases]).update(last_activity_at=cases[0].last_activity_at)


def test_case_list_pages_forward_and_back_without_offsets(client, login, animator, site, referent, settings):
    """« Suivant » walks the whole list once, in order, « Précédent » walks it back, « Dernière
    page » ends it, whatever ties there are on the last activity."""
    settings.CASE_LIST_PAGE_SIZE = 5
    cases = CaseFactory.create_batch(12, site=site, referent=referent)
    _same_instant(cases[4:9])
    ordered = Case.objects.filter(site=site).order_by("-last_activity_at", "-id")
    expected = [str(case.public_id) for case in ordered]
    url = reverse("case_list")
    login(client, animator)
    html = client.get(url).content.decode()
    assert "12 dossiers" in html and _link(html, "prev") is None and _link(html, "first") is None
    seen, pages = [], [html]
    while True:
        seen += _listed(html)
        following = _link(html, "next")
        if following is None:
            break
        html = client.get(url + following).content.decode()
        pages.append(html)
    assert seen == expected and len(pages) == 3
    assert _link(html, "last") is None and _link(html, "first") is not None
    back = []
    while (previous := _link(html, "prev")) is not None:
        html = client.get(url + previous).content.decode()
        back = _listed(html) + back
    assert back == expected[:10]
    last = client.get(url + _link(pages[0], "last")).content.decode()
    assert _listed(last) == expected[-5:]
    assert _link(last, "next") is None and _link(last, "prev") is not None


def test_a_case_that_moves_between_two_clicks_makes_no_other_appear_twice(
    client, login, animator, site, referent, settings
):
    settings.CASE_LIST_PAGE_SIZE = 5
    CaseFactory.create_batch(10, site=site, referent=referent)
    url = reverse("case_list")
    first = login(client, animator).get(url).content.decode()
    moved = Case.objects.get(public_id=_listed(first)[-1])
    services.record_activity(moved)  # new activity: it goes to the top of the list
    second = client.get(url + _link(first, "next")).content.decode()
    assert len(_listed(second)) == 5 and not set(_listed(first)) & set(_listed(second))


def test_case_list_keeps_its_filters_from_page_to_page(client, login, animator, site, referent, settings):
    settings.CASE_LIST_PAGE_SIZE = 5
    CaseFactory.create_batch(7, site=site, referent=referent, company__name="Menuiserie Papin")
    CaseFactory.create_batch(3, site=site, referent=referent, company__name="Garage Riou")
    url = reverse("case_list")
    first = login(client, animator).get(url, {"q": "papin"}).content.decode()
    following = _link(first, "next")
    assert "q=papin" in following
    second = client.get(url + following).content.decode()
    assert len(_listed(second)) == 2 and "Garage Riou" not in second


DAMAGED_CURSORS = [
    "abc",
    "!!!",
    "x" * 2000,
    encode_cursor([]),
    encode_cursor([1]),
    encode_cursor(["x", "y"]),  # a text for the date, another for the id
    encode_cursor([{"t": "2026-01-01T00:00:00"}, 1]),  # no time zone
    encode_cursor([{"t": "2026-01-01T00:00:00+01:00"}, 10**30]),  # beyond 64 bits
    encode_cursor([{"t": "2026-01-01T00:00:00+01:00"}, "a\x00b"]),
    encode_cursor([{"t": "not a date"}, 1]),
    encode_cursor([[1], {"x": 1}]),
    encode_cursor([1.5, 2]),
]


@pytest.mark.parametrize("damaged", DAMAGED_CURSORS)
def test_a_damaged_page_link_gives_the_first_page_and_a_message(client, login, animator, case, damaged):
    for name in ("apres", "avant"):
        response = login(client, animator).get(reverse("case_list"), {name: damaged}, follow=True)
        assert response.status_code == 200
        assert case.company.name in response.content.decode()
        assert any("première page" in text for text in alerts(response))


HISTORY_RANK_TOO_BIG = encode_cursor([{"t": "2026-01-01T00:00:00+01:00"}, 1, 10**30])


@pytest.mark.parametrize("damaged", [*DAMAGED_CURSORS, HISTORY_RANK_TOO_BIG])
def test_a_damaged_link_of_the_case_history_gives_its_first_page(client, login, referent, case, damaged):
    response = login(client, referent).get(reverse("case_history", args=[case.public_id]), {"avant": damaged})
    assert response.status_code == 200
    assert case.company.name in response.content.decode()
    assert any("première page" in text for text in alerts(response))


def test_the_former_page_numbers_give_the_first_page(client, login, animator, case):
    response = login(client, animator).get(reverse("case_list"), {"page": "abc"})
    assert response.status_code == 200 and case.company.name in response.content.decode()


def test_case_list_query_count_is_the_same_at_10_and_200_cases(client, login, animator, site, referent):
    login(client, animator)
    CaseFactory.create_batch(10, site=site, referent=referent, company__name="Menuiserie Papin")
    at_10 = count_queries(client, reverse("case_list"))
    CaseFactory.create_batch(190, site=site, referent=referent, company__name="Menuiserie Papin")
    at_200 = count_queries(client, reverse("case_list"))
    assert at_10 == at_200
    assert at_200 <= 10


@pytest.mark.parametrize("query", [{"fin": "1"}, {"q": "papin"}, {"q": "1000"}, {"q": "papin", "fin": "1"}])
def test_the_last_page_and_searches_keep_their_query_count_as_cases_grow(
    client, login, animator, site, referent, query, settings
):
    settings.CASE_LIST_PAGE_SIZE = 5
    login(client, animator)
    url = reverse("case_list")
    CaseFactory.create_batch(6, site=site, referent=referent, company__name="Menuiserie Papin")
    small = count_queries(client, f"{url}?{urlencode(query)}")
    CaseFactory.create_batch(60, site=site, referent=referent, company__name="Menuiserie Papin")
    assert count_queries(client, f"{url}?{urlencode(query)}") == small


# --- Proposing a company ---------------------------------------------------------------------


def _proposal(site, referent_organisation, **overrides):
    data = {
        "site": site.pk,
        "referent_organisation": referent_organisation.pk,
        "siret": "732 829 320 00074",
        "name": "Ateliers du Layon",
        "naf_code": "2562b",
        "size_band": "12",
        "commune": "Ancenis-Saint-Géréon",
        "postcode": "44150",
        "territory": site.territory.pk,
        "contact_name": "Jeanne Roux",
        "contact_email": "jeanne.roux@example.org",
        "consent": "on",
    }
    data.update(overrides)
    return data


def test_referent_proposes_a_company(client, login, referent, referent_organisation, site):
    response = login(client, referent).post(reverse("case_propose"), _proposal(site, referent_organisation))
    case = Case.objects.get()
    assert response.url == reverse("case_detail", kwargs={"public_id": case.public_id})
    assert case.referent == referent and case.state == CaseState.PROPOSED and case.has_consent
    assert case.company.naf_code == "25.62B" and case.company.siret == "73282932000074"
    page = client.get(response.url).content.decode()
    assert "Ateliers du Layon" in page and "Jeanne Roux" in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("siret", "73282932000075", "clé de contrôle"),
        ("siret", "1234", "14 chiffres"),
        ("siret", "7328293200007A", "chiffres"),
        ("naf_code", "256B", "4 chiffres et une lettre"),
        ("postcode", "4415", "5 chiffres"),
        ("name", "   ", "obligatoire"),
        ("contact_email", "not-an-email", "courriel valide"),
    ],
)
def test_bad_company_input_is_explained_and_saves_nothing(
    client, login, referent, referent_organisation, site, field, value, message
):
    response = login(client, referent).post(
        reverse("case_propose"), _proposal(site, referent_organisation, **{field: value})
    )
    assert response.status_code == 200
    assert any(message in error for error in field_errors(response)), field_errors(response)
    assert Company.objects.count() == 0 and Case.objects.count() == 0


def test_second_open_case_names_the_referent_and_saves_nothing(
    client, login, referent, referent_organisation, site, other_referent
):
    login(client, referent).post(reverse("case_propose"), _proposal(site, referent_organisation))
    # A second adviser, serving the same site, meets the same company.
    second = UserFactory(first_name="Marc", last_name="Leroy")
    MembershipFactory(user=second, organisation=OrganisationFactory(territories=[site.territory]))
    client.force_login(second)
    organisation = second.memberships.get().organisation
    response = client.post(reverse("case_propose"), _proposal(site, organisation))
    assert response.status_code == 200
    assert any("Claire Durand" in text and "France Travail Ancenis" in text for text in alerts(response))
    assert Case.objects.count() == 1 and Company.objects.count() == 1


def test_territory_outside_the_site_department_is_refused(
    client, login, referent, referent_organisation, site
):
    elsewhere = PilotSiteFactory().territory
    response = login(client, referent).post(
        reverse("case_propose"), _proposal(site, referent_organisation, territory=elsewhere.pk)
    )
    assert any("Choisissez un territoire" in error for error in field_errors(response))
    assert Case.objects.count() == 0


def test_propose_form_only_offers_the_referents_sites(client, login, referent, site, other_site):
    html = login(client, referent).get(reverse("case_propose")).content.decode()
    site_select = re.search(r'<select name="site".*?</select>', html, re.S).group(0)
    assert site.name in site_select
    assert other_site.name not in site_select


# --- Case detail and actions -------------------------------------------------------------------


def test_case_detail_shows_everything_and_only_allowed_actions(client, login, referent, animator, site):
    case = CaseFactory(site=site, referent=referent, active=True)
    NeedFactory(case=case, description="Recruter trois soudeurs", created_by=referent)
    InterventionFactory(case=case, notes="Visite de l'atelier")
    CaseTransition.objects.create(
        case=case, name="enrol", source="proposed", target="enrolled", actor=animator
    )
    html = (
        login(client, referent)
        .get(reverse("case_detail", kwargs={"public_id": case.public_id}))
        .content.decode()
    )
    for expected in (
        case.company.name,
        case.company.siret,
        "Claire Durand",
        "Recruter trois soudeurs",
        "Visite de l",
        "Accompagnement en cours",
        "Enregistré le",
    ):
        assert expected in html, expected
    # The referent of an active case may move it to follow-up, close or withdraw it — not enrol it.
    assert "/action/follow_up/" in html and "/action/close/" in html and "/action/withdraw/" in html
    assert "/action/enrol/" not in html


def test_case_detail_query_count_does_not_grow(client, login, referent, site):
    case = CaseFactory(site=site, referent=referent, active=True)
    NeedFactory(case=case, created_by=referent)
    login(client, referent)
    url = reverse("case_detail", kwargs={"public_id": case.public_id})
    count_queries(client, url)  # the very first access entry of the trail also reads the chain's anchor
    few = count_queries(client, url)
    NeedFactory.create_batch(10, case=case, created_by=referent)
    InterventionFactory.create_batch(10, case=case)
    for number in range(10):
        services.comment_add(actor=referent, case=case, body=f"Point d'étape n° {number}")
    assert count_queries(client, url) == few


def test_animator_enrols_then_a_double_submit_is_explained(client, login, animator, site, referent):
    case = CaseFactory(site=site, referent=referent, consent=True)
    login(client, animator)
    url = reverse("case_transition", kwargs={"public_id": case.public_id, "name": "enrol"})
    client.post(url, {"enrol-expected_state": "proposed"})
    case.refresh_from_db()
    assert case.state == CaseState.ENROLLED
    again = client.post(url, {"enrol-expected_state": "proposed"}, follow=True)
    assert any("modifié entre-temps" in text for text in alerts(again))
    assert case.transitions.filter(name="enrol").count() == 1


def test_enrolment_above_the_cap_is_refused_in_french(client, login, animator, site, referent):
    site.enrolment_cap = 1
    site.save()
    CaseFactory(site=site, referent=referent, enrolled=True)
    case = CaseFactory(site=site, referent=referent, consent=True)
    response = login(client, animator).post(
        reverse("case_transition", kwargs={"public_id": case.public_id, "name": "enrol"}),
        {"enrol-expected_state": "proposed"},
        follow=True,
    )
    assert any("maximum" in text for text in alerts(response))
    case.refresh_from_db()
    assert case.state == CaseState.PROPOSED


def test_enrolment_without_consent_is_refused(client, login, animator, case):
    response = login(client, animator).post(
        reverse("case_transition", kwargs={"public_id": case.public_id, "name": "enrol"}),
        {"enrol-expected_state": "proposed"},
        follow=True,
    )
    assert any("consentement" in text for text in alerts(response))
    case.refresh_from_db()
    assert case.state == CaseState.PROPOSED


def test_referent_cannot_enrol_their_own_proposal(client, login, referent, case):
    response = login(client, referent).post(
        reverse("case_transition", kwargs={"public_id": case.public_id, "name": "enrol"}),
        {"enrol-expected_state": "proposed"},
        follow=True,
    )
    assert any("pas les droits" in text for text in alerts(response))
    case.refresh_from_db()
    assert case.state == CaseState.PROPOSED


@pytest.mark.parametrize("name", ["nonsense", "save", "delete"])
def test_unknown_action_changes_nothing(client, login, animator, case, name):
    response = login(client, animator).post(
        reverse("case_transition", kwargs={"public_id": case.public_id, "name": name}),
        {f"{name}-expected_state": "proposed"},
        follow=True,
    )
    assert response.status_code == 200
    case.refresh_from_db()
    assert case.state == CaseState.PROPOSED


def test_withdraw_needs_a_reason(client, login, referent, case):
    login(client, referent)
    url = reverse("case_transition", kwargs={"public_id": case.public_id, "name": "withdraw"})
    response = client.post(url, {"withdraw-expected_state": "proposed", "withdraw-reason": "  "}, follow=True)
    assert any("motif" in text for text in alerts(response))
    client.post(
        url, {"withdraw-expected_state": "proposed", "withdraw-reason": "L'entreprise a recruté seule."}
    )
    case.refresh_from_db()
    assert case.state == CaseState.WITHDRAWN and case.decision_reason == "L'entreprise a recruté seule."


def test_close_needs_an_outcome(client, login, referent, site):
    case = CaseFactory(site=site, referent=referent, follow_up=True)
    login(client, referent)
    url = reverse("case_transition", kwargs={"public_id": case.public_id, "name": "close"})
    response = client.post(url, {"close-expected_state": "follow_up", "close-outcome": ""}, follow=True)
    assert any("résultat" in text for text in alerts(response))
    client.post(url, {"close-expected_state": "follow_up", "close-outcome": "needs_met"})
    case.refresh_from_db()
    assert case.state == CaseState.CLOSED and case.outcome == "needs_met"


def test_record_consent(client, login, referent, case):
    login(client, referent).post(reverse("case_consent", kwargs={"public_id": case.public_id}))
    case.refresh_from_db()
    assert case.consent_recorded_by == referent and case.consent_text_version == "2026-11"
    again = client.post(reverse("case_consent", kwargs={"public_id": case.public_id}), follow=True)
    assert any("déjà enregistré" in text for text in alerts(again))


# --- Needs -----------------------------------------------------------------------------------


def test_referent_adds_and_edits_a_need(client, login, referent, site):
    case = CaseFactory(site=site, referent=referent, enrolled=True)
    login(client, referent)
    response = client.post(
        reverse("need_create", kwargs={"public_id": case.public_id}),
        {
            "category": "recruitment",
            "description": "Recruter 3 soudeurs",
            "quantity": 3,
            "deadline": "2027-03-01",
        },
    )
    assert response.status_code == 302
    need = Need.objects.get()
    assert need.quantity == 3 and need.created_by == referent
    client.post(
        reverse("need_edit", kwargs={"public_id": case.public_id, "need_id": need.pk}),
        {"category": "training", "description": "Former 3 soudeurs", "quantity": 3, "status": "in_progress"},
    )
    need.refresh_from_db()
    assert need.category == "training" and need.status == "in_progress"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"category": "recruitment", "description": "  "}, "obligatoire"),
        ({"category": "recruitment", "description": "x", "quantity": 0}, "entre 1 et 10"),
        ({"category": "recruitment", "description": "x", "deadline": "31/31/2027"}, "date valide"),
        ({"category": "spaceships", "description": "x"}, "choix valide"),
        ({"category": "recruitment", "description": "x" * 5001}, "5"),
    ],
)
def test_bad_need_input_is_explained(client, login, referent, site, data, message):
    case = CaseFactory(site=site, referent=referent, enrolled=True)
    response = login(client, referent).post(
        reverse("need_create", kwargs={"public_id": case.public_id}), data
    )
    assert response.status_code == 200
    assert any(message in error for error in field_errors(response)), field_errors(response)
    assert Need.objects.count() == 0


def test_need_of_another_case_is_404(client, login, referent, site):
    mine = CaseFactory(site=site, referent=referent, enrolled=True)
    foreign_need = NeedFactory()
    response = login(client, referent).get(
        reverse("need_edit", kwargs={"public_id": mine.public_id, "need_id": foreign_need.pk})
    )
    assert response.status_code == 404


# --- Company and toolbox -------------------------------------------------------------------------


def test_company_page_lists_only_visible_cases(client, login, referent, site, other_site, other_referent):
    company = CompanyFactory(territory=site.territory)
    CaseFactory(company=company, site=site, referent=referent)
    CaseFactory(company=company, site=other_site, referent=other_referent, closed=True)
    html = (
        login(client, referent)
        .get(reverse("company_detail", kwargs={"public_id": company.public_id}))
        .content
    )
    html = html.decode()
    assert company.name in html
    assert site.name in html and other_site.name not in html


def test_toolbox_filters_by_territory_and_category(client, login, referent, site, other_site):
    ToolboxServiceFactory(name="Job dating Ancenis", territories=[site.territory])
    ToolboxServiceFactory(name="Navette Saumur", category="mobility", territories=[other_site.territory])
    login(client, referent)
    html = client.get(reverse("toolbox"), {"territory": site.territory.pk}).content.decode()
    assert "Job dating Ancenis" in html and "Navette Saumur" not in html
    html = client.get(reverse("toolbox"), {"category": "mobility"}).content.decode()
    assert "Navette Saumur" in html and "Job dating Ancenis" not in html


def test_toolbox_query_count_is_constant(client, login, referent, site):
    login(client, referent)
    ToolboxServiceFactory.create_batch(3, territories=[site.territory])
    few = count_queries(client, reverse("toolbox"))
    ToolboxServiceFactory.create_batch(25, territories=[site.territory])
    assert count_queries(client, reverse("toolbox")) == few


def test_admin_manages_reference_data(client, login, admin_user):
    login(client, admin_user)
    for name in ("casework_pilotsite", "casework_organisation", "casework_toolboxservice", "casework_user"):
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200


def test_second_animator_sees_site_cases(client, login, site, case):
    second = SiteAnimatorFactory(site=site, role="dtoe").user
    assert (
        login(client, second).get(reverse("case_detail", kwargs={"public_id": case.public_id})).status_code
        == 200
    )


def test_french_even_when_the_browser_asks_for_english(client):
    response = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert "Se connecter" in response.content.decode()


# --- Query counts of every page, pinned ------------------------------------------------------------
# A change in one of these numbers is a decision: either an accepted cost (update the number) or a
# regression (an N+1 or a forgotten select_related). The "constant" tests above check that list
# pages do not grow with the data.

PAGE_QUERIES = {
    # Every page: session, user, the user's roles (memberships, animated sites, observed territories)
    # the task counters and the notification bell of the header: 7 queries. Then the page's own reads.
    "home": 8,  # + my open cases (the task counters are shared with the header)
    "charter": 7,
    "case_list": 10,  # + sites for the filter, count, page
    "case_propose": 13,  # + site coverage, sites and organisations (form and initial values), territories
    # case_detail: + case, needs, interventions, contacts, requests, escalations, pending
    # handover, candidates for a new referent, guards ("has needs", "no open request"), comments,
    # the people who can be mentioned (the site's animators)
    # + the access entry of the audit trail (a transaction: last position of the chain, insert)
    # + the timeline (casework.timeline), whatever the number of items: transitions, needs,
    # comments and their mentions, handovers proposed, handovers declined or cancelled and who
    # cancelled them, the audit trail's field changes (referent, animators, administrators only),
    # request steps, escalations raised, escalations decided (11: each kind of event read by its
    # date, so that its history pages by keyset)
    "case_detail": 36,  # + who viewed it
    "comment_add": 9,  # + case, the people who can be mentioned
    "need_create": 8,  # + case
    "need_edit": 9,  # + case, need
    "company_detail": 14,  # + company, its visible cases, contacts, the access entry (4)
    "toolbox": 11,  # + count, page, territories served, territories of the filter
}


@pytest.mark.parametrize("url_name", sorted(PAGE_QUERIES))
def test_page_query_count(client, login, referent, site, url_name, django_assert_num_queries):
    case = CaseFactory(site=site, referent=referent, enrolled=True)
    need = NeedFactory(case=case, created_by=referent)
    InterventionFactory(case=case)
    ToolboxServiceFactory(territories=[site.territory])
    kwargs = {
        "case_detail": {"public_id": case.public_id},
        "comment_add": {"public_id": case.public_id},
        "need_create": {"public_id": case.public_id},
        "need_edit": {"public_id": case.public_id, "need_id": need.pk},
        "company_detail": {"public_id": case.company.public_id},
    }.get(url_name)
    login(client, referent)
    client.get(reverse(url_name, kwargs=kwargs))  # steady state: the trail's first entry reads its anchor
    # A page recording an access entry locks the audit chain's head row and reads it in one
    # statement on PostgreSQL (audit.chain._lock); SQLite, whose BEGIN IMMEDIATE already serialises
    # writers, reads the head row: the same count on both.
    with django_assert_num_queries(PAGE_QUERIES[url_name]):
        response = client.get(reverse(url_name, kwargs=kwargs))
    assert response.status_code == 200


# --- Regressions found in review -----------------------------------------------------------------


def test_charter_with_a_bare_word_as_next_does_not_crash(client, login):
    user = UserFactory(charter=False)
    response = login(client, user).post(
        reverse("charter"), {"accept": "yes", "version": "2026-11", "next": "foo"}
    )
    assert response.status_code == 302 and response.url == reverse("home")


def test_charter_redirect_keeps_the_whole_query_string(client, login):
    login(client, UserFactory(charter=False))
    response = client.get("/dossiers/?site=1&state=proposed")
    page = client.get(response.url)
    assert 'value="/dossiers/?site=1&amp;state=proposed"' in page.content.decode()


def test_need_form_posted_twice_creates_one_need(client, login, referent, site):
    case = CaseFactory(site=site, referent=referent, enrolled=True)
    login(client, referent)
    url = reverse("need_create", kwargs={"public_id": case.public_id})
    form_page = client.get(url).content.decode()
    token = re.search(r'name="submission_id" value="([0-9a-f-]+)"', form_page).group(1)
    data = {"category": "recruitment", "description": "Recruter 2 caristes", "submission_id": token}
    client.post(url, data)
    again = client.post(url, data)
    assert Need.objects.count() == 1
    assert any("déjà enregistré" in text for text in alerts(again))


def test_observers_get_no_total_that_would_reveal_a_masked_count(client, login, observer, site):
    CaseFactory(site=site, enrolled=True)
    CaseFactory.create_batch(3, site=site, active=True)
    html = login(client, observer).get(reverse("home")).content.decode()
    assert "Places occupées" not in html and "/ 15" not in html
    assert "&lt; 3" in html


def test_admin_is_for_platform_administrators_only(client, login):
    staff = UserFactory(is_staff=True)
    response = login(client, staff).get(reverse("admin:index"))
    assert response.status_code == 302


def test_case_list_tells_caches_that_htmx_gets_a_partial(client, login, animator, case):
    login(client, animator)
    response = client.get(reverse("case_list"), HTTP_HX_REQUEST="true")
    assert "HX-Request" in response["Vary"]
    restored = client.get(
        reverse("case_list"), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert "<html" in restored.content.decode()


def test_partner_agent_is_not_told_they_have_no_role(client, login, agent):
    html = login(client, agent).get(reverse("home")).content.decode()
    assert "pas encore de rôle" not in html


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.parametrize(
    ("query", "index"),
    [("papin", "company_name_trgm_idx"), ("100000", "company_name_trgm_idx"), ("100000", "_like")],
)
def test_the_case_search_can_read_the_trigram_indexes(admin_user, site, referent, query, index):
    """The search's own SQL matches its indexes: `name__icontains` the GIN trigram index of
    migration casework 0009, `siret__startswith` the `varchar_pattern_ops` index of the SIRET's
    unique constraint; with sequential and plain index scans made costly, PostgreSQL reads both
    sides of the OR from them. (Which plan it picks on real data is the bench's business.)"""
    from casework import selectors

    CaseFactory.create_batch(3, site=site, referent=referent, company__name="Menuiserie Papin")
    search = selectors.case_list(user=admin_user, query=query)
    with connection.cursor() as cursor:
        # Only bitmap scans are left: the company rows can then be reached by the search's
        # condition through an index that matches it, or by nothing cheaper.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = search.explain()
    assert index in plan, plan
