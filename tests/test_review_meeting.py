"""The weekly review meeting: opened by the site's animators with its agenda frozen, an entry per
item (decision, information, action item), action items as tasks of their owner with a
notification, items left open carried over to the next review, and closing it archives French
minutes e-mailed to the participants."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from casework.models import Case
from cockpit import review, services
from cockpit.models import EntryKind, ReviewEntry, WeeklyReview
from notifications.models import EventType, Notification, OutboxEmail
from tests.factories import CaseFactory, SiteAnimatorFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dtoe(site):
    """The second animator of `site` (DTOE)."""
    return SiteAnimatorFactory(site=site, role="dtoe", user__username="dtoe", user__last_name="Région").user


@pytest.fixture
def three(site, referent):
    """Three companies proposed on `site` in the last days: on the first review's agenda."""
    return {
        name: CaseFactory(site=site, referent=referent, company__name=name)
        for name in ("Atelier Dupont", "Boulangerie Bernard", "Charpente Colas")
    }


def proposed_ten_days_ago():
    """Move the proposals back in time: on the agenda of a review opened a week ago."""
    Case.objects.update(created_at=timezone.now() - timedelta(days=10))


def url(name, site, **kwargs):
    return reverse(name, kwargs={"slug": site.slug, **kwargs})


def entry_post(client, site, weekly, item, **data):
    prefix = f"item{item.pk}-"
    fields = {"kind": "decision", "text": "Relancer l'entreprise", "owner": "", "due_on": ""}
    fields.update(data)
    return client.post(
        url("review_entry_add", site, pk=weekly.pk, item=item.pk),
        {prefix + key: value for key, value in fields.items()},
    )


def item_of(weekly, case):
    return weekly.items.get(case=case)


def add_action(animator, item, owner, text, due_on=None):
    """An action item recorded by `animator` on `item` for `owner`, due today unless told."""
    return services.review_entry_add(
        actor=animator,
        item=item,
        kind="action",
        text=text,
        owner=owner,
        due_on=due_on or timezone.localdate(),
    )


def test_opening_freezes_the_agenda_once_per_week(client, login, site, animator, three):
    login(client, animator)
    response = client.post(url("review_open", site))
    weekly = WeeklyReview.objects.get()
    assert response.status_code == 302 and response["Location"] == url("review_detail", site, pk=weekly.pk)
    assert weekly.is_open and weekly.week.weekday() == 0 and weekly.opened_by == animator
    assert {item.company for item in weekly.items.all()} == set(three)
    item = item_of(weekly, three["Atelier Dupont"])
    assert [reason["kind"] for reason in item.reasons] == ["proposed"]
    assert item.reasons[0]["text"].startswith("Proposée le")  # frozen in French

    # A company proposed after the opening is not added; opening again returns the same review.
    CaseFactory(site=site, company__name="Dernière minute")
    client.post(url("review_open", site))
    assert WeeklyReview.objects.count() == 1 and weekly.items.count() == 3
    page = client.get(url("review_detail", site, pk=weekly.pk)).content.decode()
    assert "Atelier Dupont" in page and "Dernière minute" not in page
    assert "Clore la revue" in page


def test_an_action_item_becomes_a_task_of_its_owner(client, login, site, animator, referent, three):
    weekly = services.review_open(actor=animator, site=site)
    item = item_of(weekly, three["Atelier Dupont"])
    due = timezone.localdate() + timedelta(days=10)
    login(client, animator)
    response = entry_post(
        client,
        site,
        weekly,
        item,
        kind="action",
        text="Proposer un job dating",
        owner=referent.pk,
        due_on=due,
    )
    assert response.status_code == 302
    action = ReviewEntry.objects.get()
    assert (action.kind, action.owner, action.due_on, action.done_at) == ("action", referent, due, None)

    # The owner is told at once (in the application and by e-mail) ...
    notification = Notification.objects.get(recipient=referent)
    assert notification.event_type == EventType.REVIEW_ACTION
    assert "Proposer un job dating" in notification.text and "Atelier Dupont" in notification.text
    assert OutboxEmail.objects.filter(recipient=referent).count() == 1
    # ... and finds it among their tasks, until they mark it done.
    login(client, referent)
    tasks = client.get(reverse("task_list")).content.decode()
    assert f'data-action-item="{action.pk}"' in tasks and "Proposer un job dating" in tasks
    assert client.post(reverse("action_done", kwargs={"pk": action.pk})).status_code == 302
    action.refresh_from_db()
    assert action.done_by == referent and action.done_at is not None
    assert "data-action-item" not in client.get(reverse("task_list")).content.decode()
    # Done once: a second click says so and changes nothing.
    done_at = action.done_at
    client.post(reverse("action_done", kwargs={"pk": action.pk}))
    action.refresh_from_db()
    assert action.done_at == done_at


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "action", "owner": ""},  # no owner
        {"kind": "action", "due_on": ""},  # no due date
        {"kind": "action", "due_on": "2001-01-01"},  # in the past
        {"kind": "action", "owner": "999999"},  # not offered
        {"kind": "rumour"},
        {"text": "   "},
    ],
)
def test_bad_entries_are_explained_and_change_nothing(client, login, site, animator, referent, three, bad):
    weekly = services.review_open(actor=animator, site=site)
    item = item_of(weekly, three["Atelier Dupont"])
    fields = {"owner": referent.pk, "due_on": timezone.localdate() + timedelta(days=3), **bad}
    response = entry_post(login(client, animator), site, weekly, item, **fields)
    assert response.status_code == 200
    assert "fr-error-text" in response.content.decode()
    assert not ReviewEntry.objects.exists() and not Notification.objects.exists()


def test_an_action_item_is_owned_by_the_referent_or_an_animator_only(site, animator, agent, three):
    weekly = services.review_open(actor=animator, site=site)
    item = item_of(weekly, three["Atelier Dupont"])
    from casework.exceptions import BusinessRuleError

    with pytest.raises(BusinessRuleError):
        services.review_entry_add(
            actor=animator,
            item=item,
            kind=EntryKind.ACTION,
            text="Hors périmètre",
            owner=agent,
            due_on=timezone.localdate() + timedelta(days=2),
        )
    assert not ReviewEntry.objects.exists()


def test_closing_archives_french_minutes_and_emails_the_participants(
    client, login, site, animator, dtoe, referent, three
):
    weekly = services.review_open(actor=animator, site=site)
    services.review_entry_add(
        actor=animator, item=item_of(weekly, three["Atelier Dupont"]), kind="decision", text="Intégrer"
    )
    services.review_entry_add(
        actor=dtoe,
        item=item_of(weekly, three["Boulangerie Bernard"]),
        kind="action",
        text="Appeler le gérant",
        owner=referent,
        due_on=timezone.localdate() + timedelta(days=7),
    )
    OutboxEmail.objects.all().delete()
    login(client, dtoe)
    response = client.post(url("review_close", site, pk=weekly.pk))
    assert response.status_code == 302
    weekly.refresh_from_db()
    assert (weekly.status, weekly.closed_by) == ("closed", dtoe)
    assert set(weekly.participants.all()) == {animator, dtoe}
    minutes = weekly.minutes
    assert minutes.startswith("Compte rendu de la revue hebdomadaire — Ancenis, semaine du")
    assert "Décision\u00a0: Intégrer" in minutes
    assert "Action (Claire Durand, échéance" in minutes and "Appeler le gérant" in minutes
    assert "Charpente Colas" in minutes and "Rien de noté\u00a0: reporté à la revue suivante." in minutes
    emails = OutboxEmail.objects.order_by("to")
    assert [email.to for email in emails] == sorted([animator.email, dtoe.email])
    assert all(email.body_text == minutes and "Compte rendu" in email.subject for email in emails)
    assert "Appeler le gérant" in emails[0].body_html

    # The archive is read on the page; nothing can be recorded on a closed review.
    page = client.get(url("review_detail", site, pk=weekly.pk)).content.decode()
    assert "data-minutes" in page and "Appeler le gérant" in page and "Clore la revue" not in page
    entry_post(client, site, weekly, item_of(weekly, three["Charpente Colas"]), text="Trop tard")
    assert not ReviewEntry.objects.filter(text="Trop tard").exists()
    client.post(url("review_close", site, pk=weekly.pk))
    assert OutboxEmail.objects.count() == 2  # closed once, e-mailed once


def test_open_items_carry_over_to_the_next_review(site, animator, referent, three):
    first = services.review_open(actor=animator, site=site)
    services.review_entry_add(
        actor=animator, item=item_of(first, three["Atelier Dupont"]), kind="information", text="RAS"
    )
    action = services.review_entry_add(
        actor=animator,
        item=item_of(first, three["Boulangerie Bernard"]),
        kind="action",
        text="Appeler le gérant",
        owner=referent,
        due_on=timezone.localdate() + timedelta(days=3),
    )
    # Charpente Colas: nothing recorded.
    services.review_close(actor=animator, weekly=first)

    second = services.review_open(actor=animator, site=site, now=timezone.now() + timedelta(days=7))
    assert second.since == first.opened_at
    kinds = {item.company: [reason["kind"] for reason in item.reasons] for item in second.items.all()}
    assert kinds == {"Boulangerie Bernard": ["action"], "Charpente Colas": ["carried"]}
    carried = item_of(second, three["Boulangerie Bernard"]).reasons[0]["text"]
    assert "Appeler le gérant" in carried and "Claire Durand" in carried

    # At the second review the action is done (noted) and Charpente Colas is dealt with: the third
    # review has nothing carried over.
    services.action_done(actor=referent, entry=action)
    services.review_entry_add(
        actor=animator, item=item_of(second, three["Boulangerie Bernard"]), kind="information", text="Fait"
    )
    services.review_entry_add(
        actor=animator, item=item_of(second, three["Charpente Colas"]), kind="decision", text="Sortie"
    )
    services.review_close(actor=animator, weekly=second)
    # (The companies were active in between: none is idle for 14 days at the third review.)
    Case.objects.update(last_activity_at=timezone.now() + timedelta(days=8))
    third = services.review_open(actor=animator, site=site, now=timezone.now() + timedelta(days=14))
    assert list(third.items.values_list("company", "reasons")) == []


def test_a_review_left_open_must_be_closed_before_the_next(client, login, site, animator, three):
    first = services.review_open(actor=animator, site=site, now=timezone.now() - timedelta(days=7))
    login(client, animator)
    response = client.post(url("review_open", site), follow=True)
    assert "est encore ouverte" in response.content.decode()
    assert list(WeeklyReview.objects.all()) == [first]


def test_only_the_sites_animators_run_its_reviews(client, login, site, other_site, animator, referent, three):
    weekly = services.review_open(actor=animator, site=site)
    item = item_of(weekly, three["Atelier Dupont"])
    stranger = SiteAnimatorFactory(site=other_site).user
    for user in (stranger, referent):
        login(client, user)
        assert client.post(url("review_open", site)).status_code == 404
        assert client.get(url("review_detail", site, pk=weekly.pk)).status_code == 404
        assert entry_post(client, site, weekly, item).status_code == 404
        assert client.post(url("review_close", site, pk=weekly.pk)).status_code == 404
    # The same review seen from another site's address does not exist either.
    login(client, SiteAnimatorFactory(site=other_site, user=animator).user)
    assert client.get(url("review_detail", other_site, pk=weekly.pk)).status_code == 404
    assert not ReviewEntry.objects.exists() and WeeklyReview.objects.get().is_open


def test_an_action_item_is_marked_done_by_its_owner_or_the_animators_only(
    client, login, site, animator, referent, other_referent, three
):
    weekly = services.review_open(actor=animator, site=site)
    action = add_action(animator, item_of(weekly, three["Atelier Dupont"]), referent, "Visite")
    login(client, other_referent)
    assert client.post(reverse("action_done", kwargs={"pk": action.pk})).status_code == 404
    login(client, animator)
    response = client.post(reverse("action_done", kwargs={"pk": action.pk}), {"review": str(weekly.pk)})
    assert response["Location"] == url("review_detail", site, pk=weekly.pk)
    action.refresh_from_db()
    assert action.done_by == animator


def test_losing_the_case_removes_the_action_from_the_owners_tasks(client, login, site, animator, three):
    colleague = UserFactory()
    case = three["Atelier Dupont"]
    weekly = services.review_open(actor=animator, site=site)
    services.review_entry_add(
        actor=animator,
        item=item_of(weekly, case),
        kind="action",
        text="Visite",
        owner=case.referent,
        due_on=timezone.localdate(),
    )
    assert len(review.open_actions_of(case.referent)) == 1
    Case.objects.filter(pk=case.pk).update(referent=colleague)
    assert review.open_actions_of(case.referent) == []


def test_the_review_page_reads_the_same_number_of_queries_at_any_size(
    client, login, site, animator, referent
):
    def queries_of_page():
        WeeklyReview.objects.all().delete()
        weekly = services.review_open(actor=animator, site=site)
        for item in weekly.items.all():
            add_action(animator, item, animator, "Suivre")
        login(client, animator)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url("review_detail", site, pk=weekly.pk)).status_code == 200
        return len(queries), weekly.items.count()

    CaseFactory.create_batch(2, site=site, referent=referent)
    small, small_items = queries_of_page()
    CaseFactory.create_batch(8, site=site, referent=CaseFactory(site=site).referent)
    large, large_items = queries_of_page()
    assert (small_items, large_items) == (2, 11)
    assert small == large


def test_the_list_of_reviews_continues_the_one_under_way_in_the_same_queries(
    client, login, site, animator, referent, three
):
    login(client, animator)

    def list_page():
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url("review_list", site)).content.decode()
        return page, len(queries)

    page, _count = list_page()
    assert "Ouvrir la revue de la semaine" in page
    weekly = services.review_open(actor=animator, site=site, now=timezone.now() - timedelta(days=28))
    page, few = list_page()
    assert "Reprendre la revue de la semaine du" in page and "Ouvrir la revue de la semaine" not in page
    assert url("review_detail", site, pk=weekly.pk) in page
    services.review_close(actor=animator, weekly=weekly)
    for weeks_ago in (3, 2, 1):
        later = services.review_open(
            actor=animator, site=site, now=timezone.now() - timedelta(days=7 * weeks_ago)
        )
        services.review_close(actor=animator, weekly=later)
    page, many = list_page()
    assert page.count("data-review=") == 4 and "Ouvrir la revue de la semaine" in page
    assert few == many


def test_a_multi_line_action_reaches_its_owner_by_email(site, animator, referent, three, mailoutbox):
    from notifications import outbox

    weekly = services.review_open(actor=animator, site=site)
    add_action(
        animator,
        item_of(weekly, three["Atelier Dupont"]),
        referent,
        "Appeler le gérant\r\npuis envoyer la fiche de poste",
    )
    assert outbox.drain() == 1
    [email] = mailoutbox
    assert email.to == [referent.email] and "\n" not in email.subject
    assert "Appeler le gérant puis envoyer la fiche de poste" in email.subject


def test_a_referent_who_left_their_organisation_owns_no_action(site, animator, referent, three):
    from casework.exceptions import BusinessRuleError
    from casework.models import Membership

    weekly = services.review_open(actor=animator, site=site)
    item = item_of(weekly, three["Atelier Dupont"])
    assert referent in review.action_owners(weekly, [item])[item.pk]
    Membership.objects.filter(user=referent).update(is_active=False)
    assert review.action_owners(weekly, [item])[item.pk] == [animator]
    with pytest.raises(BusinessRuleError):
        add_action(animator, item, referent, "Visite")
    assert not ReviewEntry.objects.exists() and not Notification.objects.exists()


def test_a_carried_action_is_marked_done_from_the_next_review(client, login, site, animator, referent, three):
    proposed_ten_days_ago()
    first = services.review_open(actor=animator, site=site, now=timezone.now() - timedelta(days=7))
    action = add_action(animator, item_of(first, three["Atelier Dupont"]), referent, "Visite")
    services.review_close(actor=animator, weekly=first)
    second = services.review_open(actor=animator, site=site)
    login(client, animator)
    page = client.get(url("review_detail", site, pk=second.pk)).content.decode()
    done_url = reverse("action_done", kwargs={"pk": action.pk})
    assert done_url in page
    response = client.post(done_url, {"review": str(second.pk)})
    assert response["Location"] == url("review_detail", site, pk=second.pk)
    action.refresh_from_db()
    assert action.done_by == animator
    assert done_url not in client.get(url("review_detail", site, pk=second.pk)).content.decode()


def test_an_item_of_another_review_is_not_found_here(client, login, site, animator, three):
    proposed_ten_days_ago()
    first = services.review_open(actor=animator, site=site, now=timezone.now() - timedelta(days=7))
    services.review_close(actor=animator, weekly=first)
    second = services.review_open(actor=animator, site=site)
    CaseFactory(site=site)
    foreign = first.items.first()
    response = entry_post(login(client, animator), site, second, foreign)
    assert response.status_code == 404
    assert not ReviewEntry.objects.exists()


def test_a_decision_ignores_the_fields_of_an_action(client, login, site, animator, three):
    weekly = services.review_open(actor=animator, site=site)
    item = item_of(weekly, three["Atelier Dupont"])
    response = entry_post(login(client, animator), site, weekly, item, owner="abc", due_on="32/13/2026")
    assert response.status_code == 302
    entry = ReviewEntry.objects.get()
    assert (entry.kind, entry.owner, entry.due_on) == ("decision", None, None)


def test_a_closed_case_does_not_come_back(site, animator, referent, three):
    proposed_ten_days_ago()
    from casework import services as case_services

    first = services.review_open(actor=animator, site=site, now=timezone.now() - timedelta(days=7))
    add_action(animator, item_of(first, three["Atelier Dupont"]), referent, "Visite")
    services.review_close(actor=animator, weekly=first)  # the other two: nothing recorded
    for name in ("Atelier Dupont", "Boulangerie Bernard"):
        case_services.case_transition(
            actor=referent, case=three[name], name="withdraw", expected_state="proposed", reason="Retrait"
        )
    second = services.review_open(actor=animator, site=site)
    assert [item.company for item in second.items.all()] == ["Charpente Colas"]
    assert review.open_actions_of(referent) == []


def test_the_task_list_reads_the_same_queries_with_more_action_items(client, login, site, animator, referent):
    cases = CaseFactory.create_batch(6, site=site, referent=referent)
    weekly = services.review_open(actor=animator, site=site)
    login(client, referent)
    counts = []
    for case in (cases[0], *cases[1:]):
        add_action(animator, item_of(weekly, case), referent, "Suivre")
        if case in (cases[0], cases[-1]):
            with CaptureQueriesContext(connection) as queries:
                page = client.get(reverse("task_list")).content.decode()
            counts.append((len(queries), page.count("data-action-item=")))
    assert [shown for _count, shown in counts] == [1, 6]
    assert counts[0][0] == counts[1][0]
