"""The case timeline: one chronological list of everything that happened on a case, built from
casework's records, the audit trail's change entries and workflows' requests and escalations."""

import datetime
import html
import re

import pytest
from auditlog.context import set_actor
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import dateformat, timezone, translation

from casework import services as casework_services
from casework.enums import SizeBand, ToolboxCategory
from casework.mentions import handle_of
from casework.models import CaseTransition
from casework.timeline import HISTORY_PAGE, TIMELINE_PAGE, case_timeline
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
    make_siret,
)
from workflows import services
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.models import Escalation

pytestmark = pytest.mark.django_db

NB = "\u00a0"  # French typography: a no-break space before « : » and inside « »
SYSTEM = "Plateforme (automatique)"


def agent_of(organisation, first_name, last_name):
    user = UserFactory(first_name=first_name, last_name=last_name)
    MembershipFactory(user=user, organisation=organisation, can_be_referent=False)
    return user


@pytest.fixture
def partners(site):
    """Two mobility partners of the site's territory; "Plateforme mobilité" comes first (same load,
    name order), "Wimoov" after a decline."""
    platform = OrganisationFactory(name="Plateforme mobilité")
    wimoov = OrganisationFactory(name="Wimoov")
    for organisation in (platform, wimoov):
        ToolboxServiceFactory(
            name=f"Scooters {organisation.name}",
            category="mobility",
            provider=organisation,
            territories=[site.territory],
        )
    return {
        "platform_agent": agent_of(platform, "Marc", "Leroy"),
        "wimoov_agent": agent_of(wimoov, "Yann", "Bodin"),
    }


def review_task(request):
    return request.task_set.filter(flow_task=FLOW.review).order_by("-pk").first()


def full_story(site, referent, referent_organisation, animator, partners):
    """A case's life through the services, as the users would live it."""
    case = casework_services.case_propose(
        actor=referent,
        site=site,
        referent_organisation=referent_organisation,
        company=casework_services.CompanyData(
            siret=make_siret(4242),
            name="Chaudronnerie Ligérienne",
            naf_code="25.62B",
            size_band=SizeBand.B20_49,
            commune="Ancenis-Saint-Géréon",
            territory_id=site.territory_id,
        ),
        consent=False,
        summary="Recrutements difficiles.",
    )
    casework_services.case_record_consent(actor=referent, case=case)
    casework_services.case_transition(actor=animator, case=case, name="enrol", expected_state="proposed")
    need = casework_services.need_create(
        actor=referent, case=case, category="mobility", description="Venir à l'usine à 5 h", quantity=2
    )
    with set_actor(referent):  # what AuditlogMiddleware does for a request of the referent
        casework_services.need_update(actor=referent, need=need, quantity=3)
    case.refresh_from_db()
    casework_services.case_transition(actor=referent, case=case, name="diagnose", expected_state="enrolled")
    case.refresh_from_db()

    request = services.request_open(
        actor=referent, case=case, need=need, brief="3 scooters", category="mobility"
    )
    task = review_task(request)
    services.task_claim(actor=partners["platform_agent"], task_id=task.pk)
    services.request_decline(
        actor=partners["platform_agent"], task_id=task.pk, reason="no_capacity", reason_text="Flotte complète"
    )
    task = review_task(request)  # routed again, to Wimoov, by the platform
    wimoov_agent = partners["wimoov_agent"]
    services.task_claim(actor=wimoov_agent, task_id=task.pk)
    services.request_accept(actor=wimoov_agent, task_id=task.pk)
    intervention = services.intervention_plan(
        actor=wimoov_agent, request=request, kind="meeting", planned_on=datetime.date(2026, 12, 3)
    )
    services.intervention_record(
        actor=wimoov_agent, intervention=intervention, status="done", outcome="3 scooters prêtés"
    )
    deliver = request.task_set.get(flow_task=FLOW.deliver)
    services.request_deliver(actor=wimoov_agent, task_id=deliver.pk, result_text="Scooters livrés")
    validate = request.task_set.get(flow_task=FLOW.validate)
    services.request_validate(actor=referent, task_id=validate.pk, accept=True)

    casework_services.comment_add(
        actor=referent, case=case, body=f"Point avec @{handle_of(animator)} : <b>urgent</b>"
    )
    escalation = services.escalation_raise(actor=referent, case=case, text="Le dirigeant ne répond plus")
    services.escalation_decide(actor=animator, escalation=escalation, decision="note", text="On relance")
    return case, request


@pytest.fixture
def story(site, referent, referent_organisation, animator, partners):
    return full_story(site, referent, referent_organisation, animator, partners)


def _fr(msgid):
    with translation.override("fr"):
        return translation.gettext(msgid)


def lines(case, viewer):
    with translation.override("fr"):
        return [(item.text, item.actor) for item in reversed(case_timeline(case, viewer).items)]


def test_the_timeline_tells_the_whole_story_once_in_order_with_each_actor(
    story, referent, animator, partners
):
    case, _request = story
    with translation.override("fr"):
        category = str(ToolboxCategory.MOBILITY.label)
    request = f"Demande «{NB}{category}{NB}»"
    claire, animatrice = "Claire Durand", animator.get_full_name()
    version = settings.COMPANY_CONSENT_TEXT_VERSION
    marc, yann = "Marc Leroy", "Yann Bodin"
    assert lines(case, referent) == [
        ("Entreprise proposée pour l’expérimentation", claire),
        (f"Consentement de l’entreprise enregistré (version du texte {version})", claire),
        ("Entreprise intégrée à l’expérimentation", animatrice),
        (f"Besoin enregistré{NB}: {category}", claire),
        (f"Besoin modifié{NB}: {category} — Venir à l'usine à 5 h", claire),
        ("Diagnostic des besoins validé", claire),
        (f"{request} ouverte", claire),
        (f"{request} orientée vers Plateforme mobilité", SYSTEM),
        ("Accompagnement démarré", claire),
        (f"{request} prise en charge par Plateforme mobilité", marc),
        (f"{request} déclinée par Plateforme mobilité", marc),
        (f"{request} orientée vers Wimoov", SYSTEM),
        (f"{request} prise en charge par Wimoov", yann),
        (f"{request} acceptée par Wimoov", yann),
        (f"Intervention prévue (demande «{NB}{category}{NB}»)", yann),
        (f"Intervention réalisée (demande «{NB}{category}{NB}»)", yann),
        (f"{request} réalisée par Wimoov", yann),
        (f"{request} validée", claire),
        ("Commentaire", claire),
        ("Dossier remonté aux animateurs", claire),
        (f"Décision des animateurs sur la remontée{NB}: {_fr('Note only')}", animatrice),
    ]


def test_items_carry_their_details_links_and_the_system_actor(story, referent, animator):
    case, request = story
    with translation.override("fr"):
        items = case_timeline(case, referent).items
    by_text = {item.text: item for item in items}
    declined = next(item for item in items if "déclinée" in item.text)
    assert declined.details == f"{_fr('No capacity now')} — Flotte complète"
    assert declined.url == reverse("request_detail", args=[request.public_id])
    assert declined.organisation == "Plateforme mobilité" and declined.kind == "request"
    routed = [item for item in items if "orientée" in item.text]
    assert len(routed) == 2 and all(item.automatic and item.actor == SYSTEM for item in routed)
    assert not any(item.automatic for item in items if item not in routed)
    planned = next(item for item in items if item.text.startswith("Intervention prévue"))
    assert planned.kind == "intervention" and "03/12/2026" in planned.details
    comment = by_text["Commentaire"]
    assert comment.url.startswith("#commentaire-")
    assert f"Mentionne{NB}: {animator.get_full_name()}" in comment.details
    change = next(item for item in items if item.kind == "change")
    assert [(c.label, c.old, c.new) for c in change.changes] == [("Quantité", "2", "3")]
    # Most recent first.
    assert [item.at for item in items] == sorted((item.at for item in items), reverse=True)


def test_the_case_page_shows_the_timeline_escaped_in_french(client, login, story, referent):
    case, _request = story
    page = login(client, referent).get(reverse("case_detail", args=[case.public_id])).content.decode()
    assert "Historique" in page and "Entreprise proposée pour l’expérimentation" in page
    assert "Quantité" in page and "2 → 3" in page
    assert SYSTEM in page
    # The comment's HTML is text, in the timeline as in the comments.
    assert "<b>urgent</b>" not in page and "&lt;b&gt;urgent&lt;/b&gt;" in page
    assert 'href="#commentaire-' in page and 'id="commentaire-' in page


def test_former_values_go_only_to_those_who_answer_for_the_case(
    client, login, story, referent, animator, partners
):
    case, _request = story
    wimoov_agent = partners["wimoov_agent"]  # sees the case: his organisation accepted a request
    for viewer in (referent, animator):
        assert any(item.kind == "change" for item in case_timeline(case, viewer).items)
    items = case_timeline(case, wimoov_agent).items
    assert not any(item.kind == "change" for item in items)
    assert any(item.kind == "need" for item in items)  # the need itself is on the page for him too
    page = login(client, wimoov_agent).get(reverse("case_detail", args=[case.public_id])).content.decode()
    assert "Besoin modifié" not in page and "2 → 3" not in page
    admin = UserFactory(is_staff=True, is_superuser=True)
    assert any(item.kind == "change" for item in case_timeline(case, admin).items)


def test_nothing_of_another_case_appears(story, site, referent, referent_organisation, partners):
    case, _request = story
    other = CaseFactory(site=site, referent=referent, enrolled=True)
    need = casework_services.need_create(
        actor=referent, case=other, category="recruitment", description="Secret"
    )
    with set_actor(referent):
        casework_services.need_update(actor=referent, need=need, quantity=99)
    casework_services.comment_add(actor=referent, case=other, body="Commentaire d'un autre dossier")
    CaseTransition.objects.create(
        case=other, name="diagnose", source="enrolled", target="diagnosed", actor=referent
    )
    with translation.override("fr"):
        items = case_timeline(case, referent).items
    seen = " ".join(f"{item.text} {item.details} {item.changes}" for item in items)
    assert "Secret" not in seen and "99" not in seen and "autre dossier" not in seen
    assert len([item for item in items if item.text == "Diagnostic des besoins validé"]) == 1


def test_handover_proposals_and_answers(
    client, login, story, referent, referent_organisation, animator, partners
):
    case, _request = story
    successor = UserFactory(first_name="Inès", last_name="Roux")
    MembershipFactory(user=successor, organisation=referent_organisation, can_be_referent=True)
    handover = casework_services.handover_propose(
        actor=referent, case=case, to_user=successor, to_organisation=referent_organisation
    )
    casework_services.handover_decline(actor=successor, handover=handover, reason="Pas le temps")
    handover = casework_services.handover_propose(
        actor=referent, case=case, to_user=successor, to_organisation=referent_organisation
    )
    # Through the page: the handover row does not say who cancelled, the audit trail's entry does
    # (its actor is the signed-in user, set by the audit middleware).
    login(client, animator).post(reverse("handover_answer", args=[case.public_id, "annuler"]))
    handover = casework_services.handover_propose(
        actor=animator, case=case, to_user=successor, to_organisation=referent_organisation
    )
    casework_services.handover_accept(actor=successor, handover=handover)
    proposed = f"Nouveau référent proposé{NB}: Inès Roux (France Travail Ancenis)"
    assert lines(case, successor)[-6:] == [
        (proposed, "Claire Durand"),
        ("Inès Roux a refusé de devenir référent", "Inès Roux"),
        (proposed, "Claire Durand"),
        ("Passation de référent annulée", animator.get_full_name()),
        (proposed, animator.get_full_name()),
        ("Passation de référent", "Inès Roux"),
    ]
    # The refusal's reason stays with those who answer for the case and the handover's parties.
    declined_reason = [item for item in case_timeline(case, animator).items if "Pas le temps" in item.details]
    assert len(declined_reason) == 1
    assert not any(
        "Pas le temps" in item.details for item in case_timeline(case, partners["wimoov_agent"]).items
    )


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), response.content.decode()


def _older_link(page):
    found = re.search(r'href="([^"]+)" rel="next" data-older-events', page)
    return found.group(1).replace("&amp;", "&") if found else None


def _events(page):
    """(date, text) of each event of a timeline on a page, in order."""
    timeline = page.split("data-timeline>")[1].split("</ol>")[0]
    return [
        (moment, html.unescape(re.sub(r"<[^>]+>", "", text)))
        for text, moment in re.findall(r'<strong>(.*?)</strong>.*?<time datetime="([^"]+)">', timeline, re.S)
    ]


def test_the_page_reads_the_timeline_in_constant_queries_and_pages_it(
    client, login, site, referent, referent_organisation, animator, partners
):
    """3, then 43 of each kind of item: the same number of queries on the case page and on each
    page of its history; the case page shows the latest TIMELINE_PAGE events and leads to the
    older ones, page after page, each event once, in order, down to the first."""
    case = CaseFactory(site=site, referent=referent, active=True)
    wimoov_agent = partners["wimoov_agent"]

    def add(number):
        for index in range(number):
            need = casework_services.need_create(
                actor=referent, case=case, category="mobility", description=f"n{index}"
            )
            with set_actor(referent):
                casework_services.need_update(actor=referent, need=need, quantity=index + 1)
            casework_services.comment_add(
                actor=referent, case=case, body=f"Point @{handle_of(animator)} n° {index}"
            )
            CaseTransition.objects.create(
                case=case, name="activate", source="diagnosed", target="active", actor=referent
            )
            request = services.request_open(
                actor=referent, case=case, need=need, brief="x", category="mobility"
            )
            task = review_task(request)
            agent = (
                partners["platform_agent"] if request.provider.name == "Plateforme mobilité" else wimoov_agent
            )
            services.task_claim(actor=agent, task_id=task.pk)
            services.request_accept(actor=agent, task_id=task.pk)
            escalation = services.escalation_raise(actor=referent, case=case, text=f"bloqué {index}")
            services.escalation_decide(actor=animator, escalation=escalation, decision="note")
            handover = casework_services.handover_propose(
                actor=referent, case=case, to_user=animator_successor, to_organisation=referent_organisation
            )
            casework_services.handover_cancel(actor=referent, handover=handover)

    animator_successor = UserFactory()
    MembershipFactory(user=animator_successor, organisation=referent_organisation, can_be_referent=True)
    url = reverse("case_detail", args=[case.public_id])
    history = reverse("case_history", args=[case.public_id])
    add(3)
    login(client, referent)
    client.get(url)  # steady state (the access chain's anchor, content types)
    client.get(history)
    few, page = count_queries(client, url)
    few_history, _page = count_queries(client, history)
    assert _older_link(page) is not None  # 3 × 12 events: more than a page
    add(40)
    many, page = count_queries(client, url)
    assert many == few
    assert len(_events(page)) == TIMELINE_PAGE
    with translation.override("fr"):
        everything = case_timeline(case, referent, limit=10_000)
    assert everything.older is None
    expected = [(dateformat.format(timezone.localtime(item.at), "c"), item.text) for item in everything.items]
    assert len(expected) > 5 * HISTORY_PAGE
    seen, link, pages = _events(page), _older_link(page), 0
    while link is not None:
        queries, older = count_queries(client, link)
        assert queries == few_history
        seen += _events(older)
        link, pages = _older_link(older), pages + 1
    assert seen == expected
    assert pages == -(-(len(expected) - TIMELINE_PAGE) // HISTORY_PAGE)
    assert "Aucun événement plus ancien" not in older
    assert Escalation.objects.filter(case=case).count() == 43
    # The partner agent's page too (no audit changes for him: one query fewer, still constant).
    login(client, wimoov_agent)
    client.get(url)
    agent_many, _page = count_queries(client, url)
    add(1)
    assert count_queries(client, url)[0] == agent_many


def test_changes_list_short_values_name_long_texts_and_survive_a_redaction():
    from casework.models import Need
    from casework.timeline import _changes

    with translation.override("fr"):
        listed = _changes(
            Need,
            {
                "quantity": ["2", "None"],
                "deadline": ["None", "2026-12-01"],
                "status": ["open", "met"],
                "description": ["ancien texte", "nouveau texte"],
                "updated_at": ["2026-11-01", "2026-11-02"],
                "category": "[effacé]",
            },
        )
        open_label, met_label = _fr("Open"), _fr("Met")
    assert [(c.label, c.old, c.new) for c in listed] == [
        ("Catégorie de la boîte à outils", None, None),  # redacted: the field's name only
        ("Description", None, None),  # a long text: never its content
        ("Quantité", "2", "—"),
        ("Échéance souhaitée", "—", "01/12/2026"),
        ("Statut", open_label, met_label),
    ]


def _walk(case, viewer, limit):
    """Every page of the timeline, `limit` items each, from the latest: the items, in order."""
    from casework.timeline import case_timeline as read

    items, before, pages = [], None, 0
    while True:
        page = read(case, viewer, limit=limit, before=before)
        items += page.items
        pages += 1
        if page.older is None:
            return items, pages
        before = page.older
        assert pages < 1000


def test_pages_of_the_history_give_every_event_once_even_at_the_same_instant(site, referent, animator):
    """Request steps written in bulk share one instant (and a transition shares it too): the pages
    still give each event once, in the order of the whole list."""
    from django.utils import timezone

    from casework.models import Need
    from workflows.models import EventKind, RequestEvent

    case = CaseFactory(site=site, referent=referent, active=True)
    need = casework_services.need_create(actor=referent, case=case, category="mobility", description="x")
    request = services.request_open(actor=referent, case=case, need=need, brief="x", category="mobility")
    moment = timezone.now()
    RequestEvent.objects.bulk_create(
        RequestEvent(request=request, kind=EventKind.CLAIMED, actor=referent) for _ in range(17)
    )
    RequestEvent.objects.filter(request=request).update(at=moment)
    CaseTransition.objects.filter(case=case).update(at=moment)
    Need.objects.filter(case=case).update(created_at=moment)
    with translation.override("fr"):
        whole = case_timeline(case, referent, limit=10_000).items
        for limit in (1, 2, 3, 7):
            items, pages = _walk(case, referent, limit)
            assert [item.key for item in items] == [item.key for item in whole]
            assert pages == -(-len(whole) // limit)


def test_audit_entries_that_list_nothing_never_hide_older_events(site, referent, animator):
    """A page whose source read its whole limit of rows that give no item (edits of unlisted need
    fields only) goes on past them: the events older than those rows are on the next pages."""
    from audit.models import AuditEntry

    case = CaseFactory(site=site, referent=referent, active=True)
    need = casework_services.need_create(actor=referent, case=case, category="mobility", description="x")
    casework_services.comment_add(actor=referent, case=case, body="Le plus ancien commentaire")
    for _ in range(8):  # audit entries of the need that change only its stamp: no item
        AuditEntry.objects.log_create(
            need,
            force_log=True,
            action=AuditEntry.Action.UPDATE,
            actor=referent,
            changes={"updated_at": ["2026-01-01", "2026-01-02"]},
        )
    with translation.override("fr"):
        whole = case_timeline(case, referent, limit=10_000).items
        items, _pages = _walk(case, referent, 2)
    assert [item.key for item in items] == [item.key for item in whole]
    assert any(item.kind == "comment" for item in items)


def test_the_history_page_shows_long_comments_whole_and_refuses_a_damaged_link(client, login, site, referent):
    case = CaseFactory(site=site, referent=referent, active=True)
    long_text = "Début. " + "très long " * 60 + "Fin du commentaire."
    casework_services.comment_add(actor=referent, case=case, body=long_text)
    history = reverse("case_history", args=[case.public_id])
    login(client, referent)
    page = client.get(history).content.decode()
    assert "Fin du commentaire." in page
    assert (
        "Fin du commentaire."
        not in client.get(reverse("case_detail", args=[case.public_id]))
        .content.decode()
        .split('id="historique"')[1]
        .split("</section>")[0]
    )
    damaged = client.get(history, {"avant": "abc"})
    assert damaged.status_code == 200 and "Fin du commentaire." in damaged.content.decode()
    assert "première page" in damaged.content.decode()


def test_the_case_page_shows_the_latest_comments_and_leads_to_the_older_ones(client, login, site, referent):
    from casework.selectors import COMMENTS_SHOWN

    case = CaseFactory(site=site, referent=referent, active=True)
    url = reverse("case_detail", args=[case.public_id])
    login(client, referent)
    casework_services.comment_add(actor=referent, case=case, body="Commentaire n° 0")
    client.get(url)  # steady state (the access chain's anchor, content types)
    few, page = count_queries(client, url)
    assert "Commentaire n° 0" in page and "historique complet" not in page
    for number in range(1, COMMENTS_SHOWN + 5):
        casework_services.comment_add(actor=referent, case=case, body=f"Commentaire n° {number}")
    many, page = count_queries(client, url)
    comments = page.split('id="commentaires"')[1]
    assert many == few
    assert f"Commentaire n° {COMMENTS_SHOWN + 4}<" in comments and "Commentaire n° 4<" not in comments
    assert "historique complet" in comments


def test_displaying_the_history_is_recorded_as_an_access(client, login, site, referent, animator):
    from audit.models import AuditEntry

    case = CaseFactory(site=site, referent=referent, active=True)
    login(client, animator).get(reverse("case_history", args=[case.public_id]))
    entry = AuditEntry.objects.filter(action=AuditEntry.Action.ACCESS, actor=animator).get()
    assert entry.additional_data == {"page": "case_history"} and entry.object_id == case.pk
