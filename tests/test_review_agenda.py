"""The weekly review's agenda, generated from live case data: one item per company with every
reason it needs the animators, on fixed scenarios."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from viewflow.workflow.models import Task

from casework import services as case_services
from casework.models import Case
from cockpit import review
from tests.factories import (
    CaseFactory,
    InterventionFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import services as request_services
from workflows import timers
from workflows.flows import ServiceRequestFlow
from workflows.models import ServiceRequest

pytestmark = pytest.mark.django_db


def review_task(request):
    return Task.objects.filter(process_id=request.pk, flow_task=ServiceRequestFlow.review).latest("pk")


def open_request(case, *, category="mobility", days=5):
    """A request of `case` routed to a partner answering within `days` business days; its agent."""
    provider = OrganisationFactory()
    ToolboxServiceFactory(
        category=category, provider=provider, territories=[case.site.territory], response_time_days=days
    )
    agent = UserFactory()
    MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
    need = NeedFactory(case=case, created_by=case.referent, category=category)
    request = request_services.request_open(
        actor=case.referent, case=case, need=need, brief="Besoin", category=category
    )
    return request, agent


def long_ago(case, days):
    """Make `case` look older than it is: proposed, enrolled and last active `days` days ago."""
    past = timezone.now() - timedelta(days=days)
    Case.objects.filter(pk=case.pk).update(created_at=past, enrolled_at=past)
    case_services.record_activity(case, past)


@pytest.fixture
def week(site, other_site, referent, animator):
    """One case per reason on `site`, plus the same kind of case on another site (never listed)."""
    cases = {}
    cases["proposed"] = CaseFactory(site=site, referent=referent, company__name="A — proposée")
    cases["enrolled"] = CaseFactory(
        site=site, referent=referent, enrolled=True, company__name="B — intégrée"
    )
    Case.objects.filter(pk=cases["enrolled"].pk).update(created_at=timezone.now() - timedelta(days=30))

    cases["waiting"] = CaseFactory(
        site=site, referent=referent, active=True, company__name="C — en attente"
    )
    long_ago(cases["waiting"], 30)
    open_request(cases["waiting"], days=5)

    cases["overdue"] = CaseFactory(
        site=site, referent=referent, active=True, company__name="D — en retard"
    )
    long_ago(cases["overdue"], 30)
    late, _agent = open_request(cases["overdue"], category="housing")
    Task.objects.filter(process_id=late.pk, flow_task_type="TIMER").update(
        scheduled=timezone.now() - timedelta(minutes=1)
    )
    ServiceRequest.objects.filter(pk=late.pk).update(deadline=timezone.now() - timedelta(minutes=1))
    assert timers.sweep() == 1

    cases["declined"] = CaseFactory(
        site=site, referent=referent, active=True, company__name="E — déclinée"
    )
    long_ago(cases["declined"], 30)
    declined, agent = open_request(cases["declined"], category="training")
    task = review_task(declined)
    request_services.task_claim(actor=agent, task_id=task.pk)
    request_services.request_decline(actor=agent, task_id=task.pk, reason="no_capacity")

    cases["escalation"] = CaseFactory(
        site=site, referent=referent, active=True, company__name="F — remontée"
    )
    long_ago(cases["escalation"], 30)
    request_services.escalation_raise(actor=referent, case=cases["escalation"], text="Bloqué")

    cases["intervention"] = CaseFactory(
        site=site, referent=referent, active=True, company__name="G — RDV"
    )
    long_ago(cases["intervention"], 30)
    case_services.record_activity(cases["intervention"], timezone.now() - timedelta(days=3))
    InterventionFactory(case=cases["intervention"], planned_on=timezone.localdate() + timedelta(days=3))
    InterventionFactory(case=cases["intervention"], planned_on=timezone.localdate() + timedelta(days=9))

    cases["idle"] = CaseFactory(
        site=site, referent=referent, active=True, company__name="H — sans activité"
    )
    long_ago(cases["idle"], 20)

    cases["quiet"] = CaseFactory(site=site, referent=referent, active=True, company__name="I — calme")
    long_ago(cases["quiet"], 30)
    case_services.record_activity(cases["quiet"], timezone.now() - timedelta(days=3))

    elsewhere = CaseFactory(site=other_site, active=True, company__name="Z — autre site")
    long_ago(elsewhere, 20)
    return cases


def agenda_now(animator, site):
    now = timezone.now()
    return review.agenda(animator, site, since=now - timedelta(days=7), until=now)


def test_the_agenda_lists_each_company_once_with_every_reason(week, animator, site):
    items = agenda_now(animator, site)
    listed = {item.company: [reason.kind for reason in item.reasons] for item in items}
    assert listed == {
        "A — proposée": ["proposed"],
        "B — intégrée": ["enrolled"],
        "C — en attente": ["waiting"],
        "D — en retard": ["overdue"],
        # declined by the first partner, the request went on to no one else: waiting for animators
        "E — déclinée": ["declined"],
        "F — remontée": ["escalation"],
        "G — RDV": ["intervention"],
        "H — sans activité": ["idle"],
    }
    assert [item.company for item in items] == sorted(listed)  # by company name


def test_the_weeks_overdue_request_is_on_the_agenda_with_a_link(week, animator, site):
    [item] = [item for item in agenda_now(animator, site) if item.company == "D — en retard"]
    [reason] = item.reasons
    late = ServiceRequest.objects.get(case=week["overdue"])
    assert reason.text == "Demande «\u00a0Logement\u00a0»\u00a0: délai de réponse dépassé"
    assert reason.url == f"/demandes/{late.public_id}/"
    assert item.url == f"/dossiers/{week['overdue'].public_id}/"


def test_what_happened_before_the_previous_review_is_not_listed_again(week, animator, site):
    now = timezone.now()
    items = review.agenda(
        animator, site, since=now + timedelta(seconds=1), until=now + timedelta(seconds=2)
    )
    listed = {item.company for item in items}
    assert "A — proposée" not in listed and "B — intégrée" not in listed and "E — déclinée" not in listed
    # still true now, whatever the previous review saw: waiting, overdue, undecided, idle, next week
    assert {"C — en attente", "D — en retard", "F — remontée", "G — RDV", "H — sans activité"} <= listed


def test_a_referent_sees_only_their_cases_in_an_agenda(week, site, other_referent):
    assert (
        review.agenda(
            other_referent, site, since=timezone.now() - timedelta(days=7), until=timezone.now()
        )
        == []
    )


def test_the_agenda_query_count_does_not_grow(week, animator, site, referent):
    def count():
        with CaptureQueriesContext(connection) as queries:
            agenda_now(animator, site)
        return len(queries)

    count()  # the user's roles are read once, then kept on the user
    first = count()
    for _ in range(5):
        long_ago(CaseFactory(site=site, referent=referent, active=True), 20)
    assert count() == first


def test_the_agenda_page_lists_the_weeks_items_in_french(client, login, week, animator, site):
    from django.urls import reverse

    url = reverse("review_agenda", kwargs={"slug": site.slug})
    page = login(client, animator).get(url).content.decode()
    assert page.count("data-agenda-item=") == 8
    late = ServiceRequest.objects.get(case=week["overdue"])
    text = "Demande «\u00a0Logement\u00a0»\u00a0: délai de réponse dépassé"
    assert f'<a href="/demandes/{late.public_id}/">{text}</a>' in page


def test_the_agenda_page_keeps_its_query_count(client, login, week, animator, site, referent):
    from django.urls import reverse

    url = reverse("review_agenda", kwargs={"slug": site.slug})
    login(client, animator).get(url)

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    first = count()
    for _ in range(5):
        long_ago(CaseFactory(site=site, referent=referent, active=True), 20)
    assert count() == first


def test_a_crowded_site_gets_a_bounded_agenda_that_names_what_it_left_out(
    client, login, week, animator, site, referent, monkeypatch
):
    """Each kind of reason lists at most REASON_LIMIT rows, the most pressing first (here the cases
    idle the longest), and the page says how many there are in all."""
    from django.urls import reverse

    monkeypatch.setattr(review, "REASON_LIMIT", 3)
    oldest = []
    for days in (40, 60, 50, 30, 45):
        case = CaseFactory(site=site, referent=referent, active=True)
        long_ago(case, days)
        oldest.append((days, case.public_id))
    expected = {str(public_id) for days, public_id in sorted(oldest, reverse=True)[:3]}
    items = agenda_now(animator, site)
    idle = {item.case_public_id for item in items if any(reason.kind == "idle" for reason in item.reasons)}
    assert idle == expected  # 60, 50 and 45 days; not 40, 30, nor the fixture's 20
    assert items.left_out == {"idle": 6}
    page = login(client, animator).get(reverse("review_agenda", kwargs={"slug": site.slug})).content.decode()
    assert "6 dossiers sans activité depuis 14 jours : les 3 inactifs depuis le plus longtemps" in page


def test_the_agenda_query_count_is_the_same_below_and_above_its_limit(
    week, animator, site, referent, monkeypatch
):
    monkeypatch.setattr(review, "REASON_LIMIT", 3)

    def count():
        with CaptureQueriesContext(connection) as queries:
            agenda_now(animator, site)
        return len(queries)

    count()
    below = count()
    for _ in range(6):
        long_ago(CaseFactory(site=site, referent=referent, active=True), 20)
        CaseFactory(site=site, referent=referent)  # proposed this week
    assert count() == below
    assert set(agenda_now(animator, site).left_out) == {"idle", "new"}


def test_opening_the_review_of_a_crowded_site_freezes_a_bounded_agenda(
    week, animator, site, referent, monkeypatch
):
    from cockpit import services as review_services

    monkeypatch.setattr(review, "REASON_LIMIT", 2)
    for _ in range(5):
        long_ago(CaseFactory(site=site, referent=referent, active=True), 20)
    weekly = review_services.review_open(actor=animator, site=site)
    idle = [item for item in weekly.items.all() if any(reason["kind"] == "idle" for reason in item.reasons)]
    assert len(idle) == 2
