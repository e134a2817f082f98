"""Case comments and @mentions: whoever sees a case takes part in its conversation; a mention tells
the person named, and only someone who can see the case can be mentioned."""

import uuid

import pytest
from django.urls import reverse

from casework import mentions, services
from casework.exceptions import BusinessRuleError, NotAllowedError, StaleStateError
from casework.models import CaseComment
from notifications.models import Notification
from notifications.selectors import target_url
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from tests.test_views import field_errors
from workflows import services as request_services

pytestmark = pytest.mark.django_db


def notified(user, event_type):
    return list(Notification.objects.filter(recipient=user, event_type=event_type))


@pytest.fixture
def active_case(site, referent):
    return CaseFactory(site=site, referent=referent, active=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Merci @claire.martin.", ["claire.martin"]),
        ("@Animator peux-tu voir ? cc @animator", ["animator"]),
        ("Écrire à contact@cci.fr, pas une mention", []),
        ("(@paul.bernard@ml-saumur.fr) et @lucie", ["paul.bernard@ml-saumur.fr", "lucie"]),
        ("Un @ seul, et @-tiret", []),
    ],
)
def test_handles_are_read_from_the_text(text, expected):
    assert mentions.handles(text) == expected


def test_a_mention_tells_the_animator_and_the_comment_is_kept(active_case, referent, animator):
    comment = services.comment_add(
        actor=referent, case=active_case, body="@animator le dirigeant attend une réponse sur le logement."
    )
    assert list(comment.mentions.all()) == [animator]
    [notification] = notified(animator, "case_mention")
    assert notification.case == active_case
    assert "mentionné" in notification.text
    assert target_url(notification).endswith("#commentaires")
    # The author is not told of their own comment.
    assert not Notification.objects.filter(recipient=referent).exists()


def test_the_referent_is_told_of_a_comment_by_someone_else(active_case, referent, animator):
    services.comment_add(actor=animator, case=active_case, body="Point à faire en revue hebdomadaire.")
    [notification] = notified(referent, "case_comment")
    assert active_case.company.name in notification.text


def test_mentioning_someone_who_cannot_see_the_case_is_refused_and_changes_nothing(
    active_case, referent, other_referent, agent
):
    for handle in ("other-referent", "agent"):
        with pytest.raises(BusinessRuleError) as refused:
            services.comment_add(actor=referent, case=active_case, body=f"Qu'en penses-tu @{handle} ?")
        assert f"@{handle} ne peut pas être mentionné ici" in refused.value.message
        # Nothing about the account: not its name.
        assert "Bernard" not in refused.value.message and "Petit" not in refused.value.message
    assert not CaseComment.objects.exists()
    assert not Notification.objects.exists()


def test_unknown_and_ambiguous_handles_get_a_clear_message(active_case, referent, animator, site):
    with pytest.raises(BusinessRuleError) as unknown:
        services.comment_add(actor=referent, case=active_case, body="@personne bonjour")
    # An unknown handle gets the same answer as someone who cannot see the case.
    assert "@personne ne peut pas être mentionné ici" in unknown.value.message
    # Two people share the part before the @: the whole address is asked for, and then works.
    organisation = OrganisationFactory(territories=[site.territory])
    for domain in ("cci.fr", "cma.fr"):
        user = UserFactory(username=f"lea.roux@{domain}")
        MembershipFactory(user=user, organisation=organisation, can_be_referent=True)
    with pytest.raises(BusinessRuleError) as ambiguous:
        services.comment_add(actor=referent, case=active_case, body="@lea.roux bonjour")
    assert "adresse" in ambiguous.value.message
    assert not CaseComment.objects.exists()


def test_the_partner_working_on_a_request_can_be_mentioned_and_answer(active_case, referent, site):
    provider = OrganisationFactory(name="Plateforme mobilité")
    ToolboxServiceFactory(category="mobility", provider=provider, territories=[site.territory])
    partner = UserFactory(username="yann.bodin@mobilite.fr")
    MembershipFactory(user=partner, organisation=provider, can_be_referent=False)
    need = NeedFactory(case=active_case, created_by=referent, category="mobility")
    request_services.request_open(
        actor=referent, case=active_case, need=need, brief="3 scooters", category="mobility"
    )

    services.comment_add(actor=referent, case=active_case, body="@yann.bodin les recrues commencent lundi.")
    assert notified(partner, "case_mention")
    answer = services.comment_add(actor=partner, case=active_case, body="Bien noté, scooters réservés.")
    assert answer.author == partner
    assert notified(referent, "case_comment")


def test_someone_who_cannot_see_the_case_cannot_comment(active_case, other_referent):
    with pytest.raises(NotAllowedError):
        services.comment_add(actor=other_referent, case=active_case, body="Bonjour")
    assert not CaseComment.objects.exists()


def test_the_same_form_sent_twice_posts_one_comment(active_case, referent):
    submission = uuid.uuid4()
    services.comment_add(actor=referent, case=active_case, body="Un seul envoi", submission_id=submission)
    with pytest.raises(StaleStateError):
        services.comment_add(actor=referent, case=active_case, body="Un seul envoi", submission_id=submission)
    assert CaseComment.objects.count() == 1


def test_the_case_page_shows_comments_and_who_can_be_mentioned(
    client, login, active_case, referent, animator
):
    services.comment_add(actor=animator, case=active_case, body="Relancer l'entreprise jeudi.")
    page = login(client, referent).get(reverse("case_detail", kwargs={"public_id": active_case.public_id}))
    html = page.content.decode()
    assert "Relancer l&#x27;entreprise jeudi." in html
    assert "@animator" in html and 'id="commentaires"' in html


def test_a_refused_comment_keeps_the_text_and_explains(client, login, active_case, referent, other_referent):
    url = reverse("comment_add", kwargs={"public_id": active_case.public_id})
    response = login(client, referent).post(
        url, {"body": "Voir avec @other-referent", "submission_id": uuid.uuid4()}
    )
    assert response.status_code == 200
    assert any("ne peut pas être mentionné ici" in error for error in field_errors(response))
    assert "Voir avec @other-referent" in response.content.decode()
    assert not CaseComment.objects.exists()


def test_a_comment_posted_through_the_page_returns_to_the_comments(
    client, login, active_case, referent, animator
):
    url = reverse("comment_add", kwargs={"public_id": active_case.public_id})
    response = login(client, referent).post(url, {"body": "@animator à voir", "submission_id": uuid.uuid4()})
    assert response.status_code == 302
    assert response.url.endswith("#commentaires")
    assert notified(animator, "case_mention")
