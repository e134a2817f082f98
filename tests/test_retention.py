"""Retention: the purge of old audit entries re-anchors the chains (verify stays green, a moved
anchor is named), and the anonymisation of cases closed long ago wipes their free text, their
contacts and the audit entries' copies of them, keeping every figure of the statistics."""

import datetime
import json
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from viewflow.workflow.models import Task

from audit import chain
from audit.actors import system_actor
from audit.models import AuditEntry, ChainAnchor
from casework import retention
from casework import services as casework_services
from casework.exceptions import BusinessRuleError, NotAllowedError
from casework.models import (
    Case,
    CaseComment,
    CaseTransition,
    CompanyContact,
    Handover,
    Intervention,
    Need,
)
from casework.selectors import site_overview
from cockpit import services as review_services
from cockpit.models import ReviewEntry, ReviewItem, WeeklyReview
from notifications.models import Notification
from tests.factories import (
    CaseFactory,
    CompanyFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import services
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.models import Escalation, RequestDecline, RequestEvent, ServiceRequest

pytestmark = pytest.mark.django_db

MARK = retention.MARKER
SECRET = "Sensible"  # in every free text written below, and nowhere else


def _raw(sql, params=()):
    """Tamper as someone with direct database access would (bypassing the application)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")  # triggers off, as a superuser
        cursor.execute(sql, params)


def ago(days):
    return timezone.now() - timedelta(days=days)


# --- Purge of the audit trail -------------------------------------------------------------------


def accesses(case, *days_ago):
    """One access entry per age given (in days), in this order in the chain."""
    return [
        AuditEntry.objects.log_create(
            case, force_log=True, action=AuditEntry.Action.ACCESS, actor=case.referent, timestamp=ago(days)
        )
        for days in days_ago
    ]


def access_seqs():
    return list(AuditEntry.objects.filter(chain="access").order_by("seq").values_list("seq", flat=True))


def test_the_purge_removes_the_old_prefix_of_each_chain_and_verify_stays_green(case, capsys):
    accesses(case, 500, 400, 370, 10, 1)
    old_change = AuditEntry.objects.log_create(
        case,
        force_log=True,
        action=AuditEntry.Action.UPDATE,
        changes={"summary": ["a", "b"]},
        timestamp=ago(3000),
    )
    assert old_change.seq > 1  # the case's creation came first: a recent entry stops the prefix
    changes_before = AuditEntry.objects.filter(chain="change").count()

    call_command("purge_audit", batch_size=2)

    assert access_seqs() == [4, 5]
    assert AuditEntry.objects.filter(chain="change").count() == changes_before  # nothing old first
    anchor = ChainAnchor.objects.get(chain="access")
    assert (anchor.first_seq, anchor.purged) == (4, 3)
    assert anchor.prev_hash == AuditEntry.objects.get(chain="access", seq=4).prev_hash
    assert chain.verify() == []
    assert "3 entrée(s) supprimée(s)" in capsys.readouterr().out
    # The chain goes on after the anchor.
    [new] = accesses(case, 0)
    assert new.seq == 6 and chain.verify() == []


def test_the_kept_part_stays_contiguous_even_when_an_old_entry_follows_a_recent_one(case):
    accesses(case, 400, 400, 5, 400, 5)
    call_command("purge_audit")
    assert access_seqs() == [3, 4, 5]
    assert chain.verify() == []


def test_a_second_purge_moves_the_anchor_again_and_counts_every_purged_entry(case):
    accesses(case, 800, 600, 400, 200, 100)
    call_command("purge_audit", access_days=500)
    assert access_seqs() == [3, 4, 5]
    call_command("purge_audit", access_days=150)
    assert access_seqs() == [5]
    anchor = ChainAnchor.objects.get(chain="access")
    assert (anchor.first_seq, anchor.purged) == (5, 4)
    assert chain.verify() == []


def test_a_chain_older_than_its_retention_goes_whole_and_the_next_entry_follows_the_anchor(case):
    last = accesses(case, 900, 800)[-1]
    call_command("purge_audit")
    assert access_seqs() == []
    anchor = ChainAnchor.objects.get(chain="access")
    assert (anchor.first_seq, anchor.prev_hash) == (3, last.entry_hash)
    assert chain.verify() == []
    [new] = accesses(case, 0)
    assert (new.seq, new.prev_hash) == (3, last.entry_hash)
    assert chain.verify() == []


def test_the_change_chain_follows_its_own_retention(db, monkeypatch):
    timestamp = AuditEntry._meta.get_field("timestamp")
    monkeypatch.setattr(timestamp, "_get_default", lambda: ago(2200))
    OrganisationFactory.create_batch(2)  # two changes recorded 2,200 days ago
    monkeypatch.setattr(timestamp, "_get_default", lambda: ago(2000))
    kept = OrganisationFactory()
    monkeypatch.undo()
    recent = OrganisationFactory()
    AuditEntry.objects.log_create(
        recent, force_log=True, action=AuditEntry.Action.ACCESS, timestamp=ago(2200)
    )

    call_command("purge_audit", stdout=StringIO())  # 6 years for changes, 1 year for accesses

    # (the first change also created the platform's system account: old too)
    first = AuditEntry.objects.filter(chain="change").order_by("seq").first()
    assert first.object_pk == str(kept.pk) and first.timestamp < ago(1999)
    assert ChainAnchor.objects.get(chain="change").purged == first.seq - 1 >= 2
    assert not AuditEntry.objects.filter(chain="access").exists()
    assert chain.verify() == []
    call_command("purge_audit", change_days=1900, stdout=StringIO())
    first = AuditEntry.objects.filter(chain="change").order_by("seq").first()
    assert first.object_pk == str(recent.pk)
    assert ChainAnchor.objects.get(chain="change").purged == first.seq - 1
    assert chain.verify() == []


def test_the_dry_run_changes_nothing(case, capsys):
    accesses(case, 500, 400, 1)
    before = list(AuditEntry.objects.values_list("pk", "entry_hash"))
    call_command("purge_audit", dry_run=True)
    out = capsys.readouterr().out
    assert "2 entrée(s) seraient supprimées" in out and "rien n'a été supprimé" in out
    assert list(AuditEntry.objects.values_list("pk", "entry_hash")) == before
    assert not ChainAnchor.objects.exists()


def test_a_moved_anchor_is_named(case):
    accesses(case, 500, 400, 10, 5, 1)
    call_command("purge_audit")
    assert chain.verify() == []
    # Someone deletes the oldest kept entry and moves the anchor past it to hide the deletion.
    oldest = AuditEntry.objects.get(chain="access", seq=3)
    _raw("DELETE FROM audit_auditentry WHERE id = %s", [oldest.pk])
    _raw(
        "UPDATE audit_chainanchor SET first_seq = 4, prev_hash = %s WHERE chain = 'access'",
        [oldest.entry_hash],
    )
    problems = chain.verify()
    assert [(p.chain, p.seq, p.kind) for p in problems] == [("access", 4, "anchor edited or forged")]


def test_an_anchor_inserted_to_hide_a_deleted_prefix_is_named(case):
    entries = accesses(case, 10, 5, 1)
    _raw("DELETE FROM audit_auditentry WHERE id = %s", [entries[0].pk])
    _raw(
        "INSERT INTO audit_chainanchor (chain, first_seq, prev_hash, purged, anchor_hash, updated_at)"
        " VALUES ('access', 2, %s, 1, %s, %s)",
        [entries[0].entry_hash, "0" * 64, timezone.now()],
    )
    assert [p.kind for p in chain.verify()] == ["anchor edited or forged"]


def test_the_purge_refuses_a_tampered_trail_unless_forced(case):
    entries = accesses(case, 500, 400, 1)
    _raw("UPDATE audit_auditentry SET actor_email = 'x@example.org' WHERE id = %s", [entries[2].pk])
    with pytest.raises(CommandError, match="Purge refusée"):
        call_command("purge_audit", stderr=StringIO())
    assert len(access_seqs()) == 3
    call_command("purge_audit", force=True, stdout=StringIO())
    assert access_seqs() == [3]


@pytest.mark.parametrize(
    "option, value",
    [("access_days", "-5"), ("change_days", "0"), ("access_days", "douze"), ("batch_size", "0")],
)
def test_bad_input_to_the_purge_is_a_french_error(option, value, case):
    accesses(case, 500)
    with pytest.raises(CommandError, match="doit être"):
        call_command("purge_audit", **{option: value})
    assert len(access_seqs()) == 1


def test_bad_input_on_the_command_line_is_a_french_error_too():
    with pytest.raises(CommandError, match="--days doit être un entier supérieur ou égal à 1"):
        call_command("anonymise_closed_cases", "--days=-3")


# --- Anonymisation of closed cases --------------------------------------------------------------


def agent_of(organisation, **kwargs):
    user = UserFactory(**kwargs)
    MembershipFactory(user=user, organisation=organisation, can_be_referent=False)
    return user


def task_of(request, node):
    return Task.objects.filter(process_id=request.pk, flow_task=node).order_by("-pk").first()


def backdate(case, days):
    """The case ended `days` ago (QuerySet.update: no audit entry, as a real wait would leave)."""
    Case.objects.filter(pk=case.pk).update(closed_at=ago(days))


@pytest.fixture
def lived_case(site, referent, animator):
    """A case taken through its whole life by the services, with free text everywhere (each
    containing SECRET), closed; and its company's contact."""
    case = CaseFactory(site=site, referent=referent, diagnosed=True, summary=f"Contexte {SECRET}")
    CompanyContact.objects.create(
        company=case.company, full_name=f"Jeanne {SECRET}", email="jeanne@example.org", phone="0601020304"
    )
    need = NeedFactory(case=case, created_by=referent, category="mobility", description=f"Besoin {SECRET}")
    first = OrganisationFactory(name="Plateforme mobilité")
    second = OrganisationFactory(name="Wimoov")
    for provider, days in ((first, 3), (second, 5)):
        ToolboxServiceFactory(
            category="mobility", provider=provider, territories=[site.territory], response_time_days=days
        )
    first_agent, second_agent = agent_of(first), agent_of(second)
    request = services.request_open(
        actor=referent, case=case, need=need, brief=f"Brief {SECRET}", category="mobility"
    )
    review = task_of(request, FLOW.review)
    services.task_claim(actor=first_agent, task_id=review.pk)
    services.request_decline(
        actor=first_agent, task_id=review.pk, reason="other", reason_text=f"Refus {SECRET}"
    )
    review = task_of(request, FLOW.review)
    services.task_claim(actor=second_agent, task_id=review.pk)
    services.request_accept(actor=second_agent, task_id=review.pk)
    request.refresh_from_db()
    intervention = services.intervention_plan(
        actor=second_agent,
        request=request,
        kind="meeting",
        planned_on=datetime.date(2026, 12, 3),
        notes=f"Notes {SECRET}",
    )
    services.intervention_record(
        actor=second_agent, intervention=intervention, status="done", outcome=f"Résultat {SECRET}"
    )
    services.request_deliver(
        actor=second_agent, task_id=task_of(request, FLOW.deliver).pk, result_text=f"Livré {SECRET}", hires=2
    )
    services.request_validate(actor=referent, task_id=task_of(request, FLOW.validate).pk, accept=True)
    casework_services.comment_add(actor=referent, case=case, body=f"Commentaire {SECRET}")
    successor = UserFactory()
    MembershipFactory(user=successor, organisation=case.referent_organisation, can_be_referent=True)
    handover = casework_services.handover_propose(
        actor=referent,
        case=case,
        to_user=successor,
        to_organisation=case.referent_organisation,
        message=f"Passation {SECRET}",
    )
    casework_services.handover_decline(actor=successor, handover=handover)
    escalation = services.escalation_raise(actor=referent, case=case, text=f"Blocage {SECRET}")
    services.escalation_decide(
        actor=animator, escalation=escalation, decision="note", text=f"Décision {SECRET}"
    )
    # The weekly review spoke of it (an action item), and of another company that stays.
    bystander = CaseFactory(site=site, referent=referent, company__name="Voisine")
    weekly = review_services.review_open(actor=animator, site=site)
    review_services.review_entry_add(
        actor=animator,
        item=weekly.items.get(case=case),
        kind="action",
        text=f"Revue {SECRET}",
        owner=referent,
        due_on=timezone.localdate(),
    )
    review_services.review_entry_add(
        actor=animator, item=weekly.items.get(case=bystander), kind="decision", text="Décision voisine"
    )
    review_services.review_close(actor=animator, weekly=weekly)
    case.refresh_from_db()
    casework_services.case_transition(
        actor=referent, case=case, name="close", expected_state=case.state, outcome="partly_met"
    )
    withdrawn = CaseFactory(site=site, referent=referent)
    casework_services.case_transition(
        actor=referent, case=withdrawn, name="withdraw", expected_state="proposed", reason=f"Retrait {SECRET}"
    )
    for done in (case, withdrawn):
        backdate(done, 4 * 365)
    return case, withdrawn


def statistics():
    """Every figure a report can count: per state and outcome, per category and status, requests,
    results, interventions, declines, events, escalations, transitions, the sites' overview."""

    def count(queryset, *fields):
        return Counter(queryset.values_list(*fields))

    return {
        "cases": count(Case.objects, "site_id", "state", "outcome", "closed_at", "enrolled_at", "created_at"),
        "needs": count(Need.objects, "case_id", "category", "status", "quantity", "created_at"),
        "requests": count(
            ServiceRequest.objects,
            "case_id",
            "category",
            "stage",
            "provider_id",
            "result_hires",
            "result_candidates",
            "opened_at",
            "routed_at",
            "accepted_at",
            "delivered_at",
            "validated_at",
            "result_trainings",
        ),
        "interventions": count(
            Intervention.objects, "case_id", "kind", "status", "planned_on", "owner_organisation"
        ),
        "declines": count(RequestDecline.objects, "organisation_id", "reason"),
        "events": count(RequestEvent.objects, "request_id", "kind", "organisation_id", "at"),
        "escalations": count(Escalation.objects, "case_id", "decision", "raised_at", "decided_at"),
        "transitions": count(CaseTransition.objects, "case_id", "name", "source", "target", "at"),
        "comments": count(CaseComment.objects, "case_id", "author_id", "created_at"),
        "handovers": count(Handover.objects, "case_id", "status"),
        "review_entries": count(
            ReviewEntry.objects, "item__case_id", "kind", "owner_id", "due_on", "done_at"
        ),
        "overview": [
            (row["site"].pk, row["counts"], row["places_taken"])
            for row in site_overview(site_ids=list(Case.objects.values_list("site_id", flat=True)))
        ],
    }


def free_texts():
    """Every free text of the cases' rows that anonymisation must wipe."""
    return {
        "case": list(Case.objects.values_list("summary", "decision_reason")),
        "need": list(Need.objects.values_list("description", flat=True)),
        "comment": list(CaseComment.objects.values_list("body", flat=True)),
        "intervention": list(Intervention.objects.values_list("notes", "outcome")),
        "transition": list(CaseTransition.objects.values_list("comment", flat=True)),
        "handover": list(Handover.objects.values_list("message", flat=True)),
        "request": list(ServiceRequest.objects.values_list("brief", "result_text", "cancel_reason")),
        "decline": list(RequestDecline.objects.values_list("reason_text", flat=True)),
        "event": list(RequestEvent.objects.values_list("text", flat=True)),
        "escalation": list(Escalation.objects.values_list("text", "decision_text")),
        "notification": list(Notification.objects.values_list("text", flat=True)),
        "contact": list(CompanyContact.objects.values_list("full_name", "email", "phone")),
        "review_entry": list(ReviewEntry.objects.values_list("text", flat=True)),
        "review_item": list(ReviewItem.objects.values_list("reasons", flat=True)),
        "minutes": list(WeeklyReview.objects.values_list("minutes", flat=True)),
    }


def entry_content(entry):
    return json.dumps([getattr(entry, name) for name in chain.REDACTABLE], ensure_ascii=False, default=str)


def test_anonymisation_wipes_every_free_text_and_the_trail_copies_and_keeps_the_figures(lived_case):
    case, withdrawn = lived_case
    texts = json.dumps(free_texts(), ensure_ascii=False)
    for where in (
        "Contexte",
        "Besoin",
        "Commentaire",
        "Notes",
        "Résultat",
        "Passation",
        "Retrait",
        "Brief",
        "Refus",
        "Livré",
        "Blocage",
        "Décision",
        "Jeanne",
        "Revue",
    ):
        assert f"{where} {SECRET}" in texts  # the fixture wrote each of them
    leaking = [e for e in AuditEntry.objects.all() if SECRET in entry_content(e)]
    assert leaking  # the trail kept copies of them
    assert chain.verify() == []
    figures = statistics()

    out = StringIO()
    call_command("anonymise_closed_cases", stdout=out)

    assert "2 dossier(s) anonymisé(s)" in out.getvalue()
    assert SECRET not in json.dumps(free_texts(), ensure_ascii=False)
    assert MARK in json.dumps(free_texts()["case"], ensure_ascii=False)
    assert not CompanyContact.objects.exists()
    assert [e.pk for e in AuditEntry.objects.all() if SECRET in entry_content(e)] == []
    # The minutes are rebuilt without the wiped text; the other company's entry stays.
    minutes = WeeklyReview.objects.get().minutes
    assert MARK in minutes and "Décision voisine" in minutes and "Voisine" in minutes
    for entry in leaking:
        entry.refresh_from_db()
        assert entry.redacted_at is not None and entry.object_repr == MARK
    assert chain.verify() == []
    assert statistics() == figures
    for done in (case, withdrawn):
        done.refresh_from_db()
        assert done.anonymised_at is not None
    stamp = AuditEntry.objects.get_for_object(case).get(changes__has_key="anonymised_at")
    assert stamp.actor == system_actor()
    assert stamp.additional_data["anonymisation"]["contacts_deleted"] in (0, 1)
    # Empty texts stay empty (a case closed without a reason still counts as such).
    assert Case.objects.get(pk=case.pk).decision_reason == ""
    # A second run finds nothing more to do.
    out = StringIO()
    call_command("anonymise_closed_cases", stdout=out)
    assert "0 dossier(s) anonymisé(s)" in out.getvalue()


def test_open_and_recently_closed_cases_are_untouched(site, referent):
    recent = CaseFactory(site=site, referent=referent, closed=True, summary=f"Récent {SECRET}")
    backdate(recent, 365)
    open_case = CaseFactory(site=site, referent=referent, active=True, summary=f"Ouvert {SECRET}")
    Case.objects.filter(pk=open_case.pk).update(closed_at=ago(5000))  # even with a stray date
    old = CaseFactory(site=site, referent=referent, refused=True, summary=f"Ancien {SECRET}")
    backdate(old, 1200)

    assert list(retention.anonymisable_cases()) == [old]
    call_command("anonymise_closed_cases", stdout=StringIO())

    assert Case.objects.get(pk=recent.pk).summary == f"Récent {SECRET}"
    assert Case.objects.get(pk=open_case.pk).summary == f"Ouvert {SECRET}"
    assert Case.objects.get(pk=old.pk).summary == MARK
    assert Case.objects.get(pk=recent.pk).anonymised_at is None
    assert chain.verify() == []


def test_a_company_with_an_open_case_keeps_its_contacts(site, other_site, referent, other_referent):
    company = CompanyFactory(territory=site.territory)
    CompanyContact.objects.create(company=company, full_name="Jeanne Martin", email="j@example.org")
    old = CaseFactory(site=site, referent=referent, company=company, closed=True)
    backdate(old, 2000)
    CaseFactory(site=other_site, referent=other_referent, company=company, enrolled=True)

    call_command("anonymise_closed_cases", stdout=StringIO())

    old.refresh_from_db()
    assert old.anonymised_at is not None
    assert CompanyContact.objects.filter(company=company).count() == 1
    assert chain.verify() == []


def test_contacts_go_with_the_last_case_of_the_company(site, other_site, referent, other_referent):
    company = CompanyFactory(territory=site.territory)
    contact = CompanyContact.objects.create(company=company, full_name="Jeanne Martin", email="j@example.org")
    first = CaseFactory(site=site, referent=referent, company=company, withdrawn=True)
    second = CaseFactory(site=other_site, referent=other_referent, company=company, closed=True)
    backdate(first, 2000)
    backdate(second, 100)  # not anonymisable yet: the contacts stay with the first
    retention.anonymise_case(actor=system_actor(), case=first)
    assert CompanyContact.objects.filter(pk=contact.pk).exists()

    backdate(second, 1500)
    result = retention.anonymise_case(actor=system_actor(), case=second)
    assert result.contacts_deleted == 1 and not CompanyContact.objects.filter(company=company).exists()
    creation = AuditEntry.objects.get_for_object(contact).get()
    assert creation.redacted_at is not None and "Jeanne" not in entry_content(creation)
    assert chain.verify() == []


def test_only_the_platform_or_an_administrator_anonymises(site, referent, admin_user):
    old = CaseFactory(site=site, referent=referent, closed=True)
    backdate(old, 2000)
    with pytest.raises(NotAllowedError):
        retention.anonymise_case(actor=referent, case=old)
    retention.anonymise_case(actor=admin_user, case=old)
    with pytest.raises(BusinessRuleError):  # already anonymised
        retention.anonymise_case(actor=admin_user, case=old)


def test_the_dry_run_of_the_anonymisation_changes_nothing(site, referent):
    old = CaseFactory(site=site, referent=referent, closed=True, summary=f"Ancien {SECRET}")
    backdate(old, 2000)
    entries = AuditEntry.objects.count()
    out = StringIO()
    call_command("anonymise_closed_cases", dry_run=True, stdout=out)
    assert str(old.public_id) in out.getvalue() and "rien n'a été modifié" in out.getvalue()
    old.refresh_from_db()
    assert old.summary == f"Ancien {SECRET}" and old.anonymised_at is None
    assert AuditEntry.objects.count() == entries


@pytest.mark.parametrize("options", [{"days": "-1"}, {"days": "trois"}, {"limit": "0"}])
def test_bad_input_to_the_anonymisation_is_a_french_error(options, site, referent):
    old = CaseFactory(site=site, referent=referent, closed=True, summary="Texte")
    backdate(old, 2000)
    with pytest.raises(CommandError, match="doit être"):
        call_command("anonymise_closed_cases", **options)
    assert Case.objects.get(pk=old.pk).anonymised_at is None


def test_the_days_option_overrides_the_setting(site, referent, settings):
    settings.CASE_RETENTION_DAYS = 3650
    old = CaseFactory(site=site, referent=referent, closed=True)
    backdate(old, 400)
    call_command("anonymise_closed_cases", stdout=StringIO())
    assert Case.objects.get(pk=old.pk).anonymised_at is None
    call_command("anonymise_closed_cases", days=365, stdout=StringIO())
    assert Case.objects.get(pk=old.pk).anonymised_at is not None


def test_one_finished_case_can_be_anonymised_at_once_on_request(site, referent):
    recent = CaseFactory(site=site, referent=referent, withdrawn=True, summary=f"Récent {SECRET}")
    other = CaseFactory(site=site, referent=referent, withdrawn=True, summary=f"Autre {SECRET}")
    call_command("anonymise_closed_cases", case=str(recent.public_id), stdout=StringIO())
    assert Case.objects.get(pk=recent.pk).summary == MARK
    assert Case.objects.get(pk=other.pk).summary == f"Autre {SECRET}"
    assert chain.verify() == []


@pytest.mark.parametrize("which", ["open", "unknown", "garbage"])
def test_the_single_case_option_refuses_what_it_cannot_anonymise(which, site, referent):
    open_case = CaseFactory(site=site, referent=referent, active=True, summary=f"Ouvert {SECRET}")
    value = {
        "open": str(open_case.public_id),
        "unknown": "00000000-0000-0000-0000-000000000000",
        "garbage": "pas-un-uuid",
    }[which]
    with pytest.raises(CommandError, match="dossier"):
        call_command("anonymise_closed_cases", case=value, stdout=StringIO())
    assert Case.objects.get(pk=open_case.pk).summary == f"Ouvert {SECRET}"


# --- Redacted entries stay under the chain's guard ----------------------------------------------


@pytest.fixture
def redacted(site, referent):
    """The change entries of an anonymised case, redacted; the trail verifies."""
    old = CaseFactory(site=site, referent=referent, closed=True, summary=f"Ancien {SECRET}")
    backdate(old, 2000)
    retention.anonymise_case(actor=system_actor(), case=old)
    entry = AuditEntry.objects.get_for_object(old).filter(redacted_at__isnull=False).order_by("seq").first()
    assert entry is not None and chain.verify() == []
    return entry


@pytest.mark.parametrize(
    "column, value",
    [
        ("changes", '{"summary": ["a", "b"]}'),
        ("changes_text", "autre"),
        ("object_repr", "Autre"),
        ("serialized_data", '{"x": 1}'),
        ("additional_data", '{"page": "autre"}'),
    ],
)
def test_an_edit_of_any_redactable_column_of_an_entry_is_still_named(column, value, site, referent):
    """The hash covers these columns through their digest: editing one is still an edit."""
    case = CaseFactory(site=site, referent=referent, summary="Texte")
    entry = AuditEntry.objects.get_for_object(case).get(action=AuditEntry.Action.CREATE)
    _raw(f"UPDATE audit_auditentry SET {column} = %s WHERE id = %s", [value, entry.pk])
    assert [(p.seq, p.kind) for p in chain.verify()] == [(entry.seq, "edited or forged")]


def test_a_redacted_entry_whose_other_columns_are_edited_is_named(redacted):
    _raw("UPDATE audit_auditentry SET actor_email = 'pirate@example.org' WHERE id = %s", [redacted.pk])
    assert [(p.seq, p.kind) for p in chain.verify()] == [(redacted.seq, "edited or forged")]


def test_a_redacted_entry_whose_content_is_rewritten_is_named(redacted):
    _raw("UPDATE audit_auditentry SET object_repr = 'Autre chose' WHERE id = %s", [redacted.pk])
    assert [(p.seq, p.kind) for p in chain.verify()] == [(redacted.seq, "edited or forged")]


def test_an_entry_redacted_without_the_key_is_named(site, referent):
    case = CaseFactory(site=site, referent=referent, summary=f"Texte {SECRET}")
    entry = AuditEntry.objects.get_for_object(case).get(action=AuditEntry.Action.CREATE)
    _raw(
        "UPDATE audit_auditentry SET object_repr = %s, changes = NULL, redacted_at = %s,"
        " redaction_hash = %s WHERE id = %s",
        [MARK, timezone.now(), "0" * 64, entry.pk],
    )
    assert [(p.seq, p.kind) for p in chain.verify()] == [(entry.seq, "edited or forged")]


def test_an_edited_entry_is_not_laundered_by_the_redaction(site, referent):
    """An entry edited in the database before the anonymisation keeps its content: redacting it
    would hide the edit from verify."""
    old = CaseFactory(site=site, referent=referent, closed=True)
    entry = AuditEntry.objects.get_for_object(old).get(action=AuditEntry.Action.CREATE)
    _raw("UPDATE audit_auditentry SET object_repr = 'Forgé' WHERE id = %s", [entry.pk])
    backdate(old, 2000)
    result = retention.anonymise_case(actor=system_actor(), case=old)
    assert result.entries_left == [entry.pk]
    entry.refresh_from_db()
    assert entry.redacted_at is None
    assert [(p.seq, p.kind) for p in chain.verify()] == [(entry.seq, "edited or forged")]


# --- PostgreSQL: the trigger --------------------------------------------------------------------


def _switch(on: bool):
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.purge', %s, true)", ["on" if on else "off"])


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_postgresql_refuses_changes_outside_the_purge_and_other_columns_under_it(site, referent):
    CaseFactory(site=site, referent=referent)
    entry = AuditEntry.objects.filter(chain="change").order_by("seq").first()
    refused = [
        (False, "UPDATE audit_auditentry SET object_repr = 'x', redacted_at = now() WHERE id = %s"),
        (False, "DELETE FROM audit_auditentry WHERE id = %s"),
        (
            True,
            "UPDATE audit_auditentry SET actor_email = 'x@example.org', redacted_at = now() WHERE id = %s",
        ),
        (
            True,
            "UPDATE audit_auditentry SET seq = seq + 100, object_repr = 'x', redacted_at = now()"
            " WHERE id = %s",
        ),
        (True, "UPDATE audit_auditentry SET object_repr = 'x' WHERE id = %s"),  # not marked redacted
    ]
    for switch, statement in refused:
        with pytest.raises(DatabaseError), transaction.atomic():
            _switch(switch)
            with connection.cursor() as cursor:
                cursor.execute(statement, [entry.pk])
    with transaction.atomic():  # the redaction columns, under the switch: accepted
        _switch(True)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE audit_auditentry SET object_repr = 'x', redacted_at = now() WHERE id = %s", [entry.pk]
            )
        _switch(False)
    entry.refresh_from_db()
    assert entry.object_repr == "x"
    with pytest.raises(DatabaseError), transaction.atomic():  # once redacted, never again
        _switch(True)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE audit_auditentry SET object_repr = 'y', redacted_at = now() WHERE id = %s", [entry.pk]
            )


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_postgresql_refuses_an_anchor_change_outside_the_purge(case):
    accesses(case, 500, 1)
    call_command("purge_audit", stdout=StringIO())
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_chainanchor SET first_seq = 1")
    assert ChainAnchor.objects.get(chain="access").first_seq == 2
