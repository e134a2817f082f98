"""The audit trail: every change of a business model and every display of a case is recorded with
its actor, in hash chains that name any entry edited, deleted, inserted or moved."""

import hashlib

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from audit import chain
from audit.actors import SYSTEM_USERNAME
from audit.models import AuditEntry
from casework import services
from casework.models import Case
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db


def entries_for(instance, action=None):
    found = AuditEntry.objects.get_for_object(instance)
    return found.filter(action=action) if action is not None else found


def test_a_transition_through_the_page_is_recorded_once_with_its_actor(
    client, login, animator, site, referent
):
    case = CaseFactory(site=site, referent=referent, consent=True)
    before = entries_for(case, AuditEntry.Action.UPDATE).count()
    login(client, animator).post(
        reverse("case_transition", kwargs={"public_id": case.public_id, "name": "enrol"}),
        {"enrol-expected_state": "proposed"},
    )
    [entry] = entries_for(case, AuditEntry.Action.UPDATE)[
        : entries_for(case, AuditEntry.Action.UPDATE).count() - before
    ]
    assert entry.actor == animator
    assert entry.changes["state"] == ["proposed", "enrolled"]
    assert entry.remote_addr == "127.0.0.1"


def test_displaying_a_case_or_a_company_records_who_saw_it(client, login, referent, animator, site):
    case = CaseFactory(site=site, referent=referent)
    login(client, animator).get(reverse("case_detail", kwargs={"public_id": case.public_id}))
    client.get(reverse("company_detail", kwargs={"public_id": case.company.public_id}))
    [seen_case] = entries_for(case, AuditEntry.Action.ACCESS)
    [seen_company] = entries_for(case.company, AuditEntry.Action.ACCESS)
    assert seen_case.actor == animator and seen_case.chain == "access"
    assert seen_company.actor == animator


def test_a_refused_page_records_no_access(client, login, other_referent, site, referent):
    case = CaseFactory(site=site, referent=referent)
    assert (
        login(client, other_referent)
        .get(reverse("case_detail", kwargs={"public_id": case.public_id}))
        .status_code
        == 404
    )
    assert not entries_for(case, AuditEntry.Action.ACCESS).exists()


def test_what_the_platform_does_by_itself_is_signed_by_its_system_account(site, referent):
    case = CaseFactory(site=site, referent=referent)
    entry = entries_for(case, AuditEntry.Action.CREATE).get()
    assert entry.actor.username == SYSTEM_USERNAME
    assert not entry.actor.is_active


def test_a_failed_transition_leaves_no_entry(site, referent, animator):
    case = CaseFactory(site=site, referent=referent)  # no consent: enrolment is refused
    before = AuditEntry.objects.count()
    with pytest.raises(services.BusinessRuleError):
        services.case_transition(actor=animator, case=case, name="enrol", expected_state="proposed")
    assert AuditEntry.objects.count() == before


def _trail(site, referent):
    for _ in range(3):
        CaseFactory(site=site, referent=referent)
    assert chain.verify() == []
    return list(AuditEntry.objects.filter(chain="change").order_by("seq"))


def _raw(sql, params):
    """Tamper as someone with direct database access would (bypassing the application)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SET LOCAL session_replication_role = replica"
            )  # triggers off, as a superuser could
        cursor.execute(sql, params)


def test_verify_names_an_edited_entry(site, referent):
    entries = _trail(site, referent)
    victim = entries[2]
    _raw("UPDATE audit_auditentry SET object_repr = %s WHERE id = %s", ["Autre entreprise", victim.pk])
    problems = chain.verify()
    assert [(p.seq, p.kind) for p in problems] == [(victim.seq, "edited or forged")]


def test_verify_names_a_deleted_entry(site, referent):
    entries = _trail(site, referent)
    victim = entries[3]
    _raw("DELETE FROM audit_auditentry WHERE id = %s", [victim.pk])
    kinds = {(p.seq, p.kind.split(" ")[0]) for p in chain.verify()}
    assert (victim.seq, "missing") in kinds
    assert (victim.seq + 1, "broken") in kinds


def test_verify_names_an_inserted_entry(site, referent):
    """Someone with database access makes room in the chain and slips an entry in. Without the
    chain's key they cannot give it a valid hash: it is named, and so is the link after it."""
    entries = _trail(site, referent)
    after = entries[1]
    _raw("UPDATE audit_auditentry SET seq = seq + 1000000 WHERE chain = 'change' AND seq > %s", [after.seq])
    _raw("UPDATE audit_auditentry SET seq = seq - 999999 WHERE chain = 'change' AND seq > 1000000", [])
    forged = AuditEntry(
        content_type_id=after.content_type_id,
        object_pk=after.object_pk,
        object_id=after.object_id,
        object_repr="Entrée forgée",
        action=AuditEntry.Action.DELETE,
        changes_text="",
        timestamp=after.timestamp,
        chain="change",
        seq=after.seq + 1,
        prev_hash=after.entry_hash,
    )
    forged_hash = hashlib.sha256(after.entry_hash.encode() + b"\n" + chain.canonical(forged)).hexdigest()
    _raw(
        "INSERT INTO audit_auditentry (content_type_id, object_pk, object_id, object_repr, action,"
        " changes_text, timestamp, chain, seq, prev_hash, entry_hash)"
        " VALUES (%s, %s, %s, %s, %s, '', %s, 'change', %s, %s, %s)",
        [
            forged.content_type_id,
            forged.object_pk,
            forged.object_id,
            forged.object_repr,
            forged.action,
            forged.timestamp,
            forged.seq,
            forged.prev_hash,
            forged_hash,
        ],
    )
    forged_id = AuditEntry.objects.get(object_repr="Entrée forgée").pk
    problems = chain.verify()
    assert any(p.entry_id == forged_id and p.kind.startswith("edited") for p in problems)
    assert any(p.seq == after.seq + 2 for p in problems)


def test_verify_names_moved_entries(site, referent):
    entries = _trail(site, referent)
    first, second = entries[1], entries[2]
    _raw("UPDATE audit_auditentry SET timestamp = %s WHERE id = %s", [second.timestamp, first.pk])
    _raw("UPDATE audit_auditentry SET timestamp = %s WHERE id = %s", [first.timestamp, second.pk])
    assert {p.seq for p in chain.verify()} == {first.seq, second.seq}


def test_the_command_says_intact_or_names_the_problem(site, referent, capsys):
    entries = _trail(site, referent)
    call_command("audit_verify")
    assert "intact" in capsys.readouterr().out
    _raw("UPDATE audit_auditentry SET actor_email = %s WHERE id = %s", ["pirate@example.org", entries[0].pk])
    with pytest.raises(CommandError):
        call_command("audit_verify")
    assert f"change #{entries[0].seq}" in capsys.readouterr().err


def test_the_application_cannot_change_an_entry(site, referent):
    entry = _trail(site, referent)[0]
    entry.object_repr = "changé"
    with pytest.raises(chain.ImmutableEntryError):
        entry.save()


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_postgresql_refuses_update_and_delete_of_entries(site, referent):
    entry = _trail(site, referent)[0]
    for statement in (
        "UPDATE audit_auditentry SET object_repr = 'x' WHERE id = %s",
        "DELETE FROM audit_auditentry WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [entry.pk])
    assert AuditEntry.objects.filter(pk=entry.pk, object_repr=entry.object_repr).exists()


def test_positions_in_a_chain_follow_each_other(site, referent):
    """Two cases created in a transaction each: the positions of the chain have no gap."""
    for _ in range(2):
        with transaction.atomic():
            CaseFactory(site=site, referent=referent)
    seqs = list(AuditEntry.objects.filter(chain="change").order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert Case.objects.count() == 2


def test_the_referent_sees_who_viewed_the_case_and_a_partner_does_not(
    client, login, referent, animator, site
):
    case = CaseFactory(site=site, referent=referent)
    url = reverse("case_detail", kwargs={"public_id": case.public_id})
    login(client, animator).get(url)
    page = login(client, referent).get(url).content.decode()
    assert "Qui a consulté ce dossier" in page
    assert str(animator) in page.split("Qui a consulté ce dossier")[1]


def test_the_chain_key_can_be_rotated_without_losing_the_history(site, referent, settings):
    """Entries sealed with the former key still verify once it is listed in
    AUDIT_CHAIN_KEY_FALLBACKS; new ones are sealed with the new key. Without the former key, every
    entry sealed with it is named."""
    former = settings.AUDIT_CHAIN_KEY or settings.SECRET_KEY  # the fixtures' entries used it
    _trail(site, referent)
    old = set(AuditEntry.objects.values_list("pk", flat=True))
    settings.AUDIT_CHAIN_KEY = "nouvelle-clé-du-journal-" + "b" * 20
    settings.AUDIT_CHAIN_KEY_FALLBACKS = [former]
    CaseFactory(site=site, referent=referent)
    assert AuditEntry.objects.exclude(pk__in=old).exists()
    assert chain.verify() == []
    settings.AUDIT_CHAIN_KEY_FALLBACKS = []
    named = {p.entry_id for p in chain.verify() if p.kind == "edited or forged"}
    assert named == old


def test_a_head_kept_outside_the_database_shows_entries_cut_off_the_end(site, referent, capsys):
    """The chain alone cannot show that its newest entries were deleted; the head printed by an
    earlier `audit_verify` and kept elsewhere can."""
    _trail(site, referent)
    call_command("audit_verify")
    [head] = [line.split(": ", 1)[1] for line in capsys.readouterr().out.splitlines() if "change:" in line]
    call_command("audit_verify", expect_head=[head])  # still there: no error
    chain_name, seq, _hash = head.split(":")
    _raw("DELETE FROM audit_auditentry WHERE chain = %s AND seq >= %s", [chain_name, int(seq) - 1])
    assert chain.verify() == []  # the chain alone looks intact
    with pytest.raises(CommandError):
        call_command("audit_verify", expect_head=[head])
    assert "recorded head missing" in capsys.readouterr().err
    with pytest.raises(CommandError, match="illisible"):
        call_command("audit_verify", expect_head=["change:abc"])


def test_the_background_loop_logs_the_heads_once_a_day(site, referent, caplog, monkeypatch):
    _trail(site, referent)
    monkeypatch.setattr(chain, "_heads_logged_at", None)
    with caplog.at_level("INFO", logger="audit.chain"):
        assert chain.log_heads_daily() is True
        assert chain.log_heads_daily() is False  # not again within a day
    seq, entry_hash = chain.heads()["change"]
    assert f"change:{seq}:{entry_hash}" in caplog.text


def test_a_service_run_outside_a_request_is_signed_by_its_acting_user(site, referent):
    """A management command or a shell calls the services with an explicit actor: that person signs
    the entries, not the platform."""
    case = CaseFactory(site=site, referent=referent, enrolled=True)
    need = services.need_create(actor=referent, case=case, category="housing", description="Logement")
    entry = entries_for(need, AuditEntry.Action.CREATE).get()
    assert entry.actor == referent
    assert entry.actor_email == referent.email


def test_who_saw_the_case_lists_each_person_once_however_often_others_reload_it(
    client, login, referent, animator, site
):
    """A partner who opened the case once stays listed after many reloads by the animator."""
    from tests.factories import (
        MembershipFactory,
        NeedFactory,
        OrganisationFactory,
        ToolboxServiceFactory,
        UserFactory,
    )
    from workflows import services as request_services

    case = CaseFactory(site=site, referent=referent, active=True)
    provider = OrganisationFactory(name="Plateforme mobilité")
    ToolboxServiceFactory(category="mobility", provider=provider, territories=[site.territory])
    partner = UserFactory(first_name="Paula", last_name="Partenaire")
    MembershipFactory(user=partner, organisation=provider, can_be_referent=False)
    need = NeedFactory(case=case, created_by=referent, category="mobility")
    request_services.request_open(actor=referent, case=case, need=need, brief="Scooters", category="mobility")
    url = reverse("case_detail", kwargs={"public_id": case.public_id})
    assert login(client, partner).get(url).status_code == 200
    for _ in range(35):
        login(client, animator).get(url)
    page = login(client, referent).get(url).content.decode()
    viewers = page.split("data-viewers>")[1].split("</ul>")[0]
    assert viewers.count("<li>") == 3  # the referent now, the animator, the partner
    assert "Paula Partenaire — 1 consultation" in viewers
    assert f"{animator} — 35 consultations" in viewers


def test_live_refreshes_of_the_case_page_are_not_counted_as_displays(client, login, referent, animator, site):
    """Opening a case 5 times shows 5 in « Qui a consulté ce dossier », however often the page's
    live part was re-read in place meanwhile (htmx, after a notification). The refreshes stay in
    the trail, flagged; htmx's history restore (back to the page, no copy kept) is a display."""
    case = CaseFactory(site=site, referent=referent, active=True)
    url = reverse("case_detail", kwargs={"public_id": case.public_id})
    login(client, animator)
    for _ in range(4):
        assert client.get(url).status_code == 200
        assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200
    assert client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true").status_code == 200
    page = login(client, referent).get(url).content.decode()
    viewers = page.split("data-viewers>")[1].split("</ul>")[0]
    assert f"{animator} — 5 consultations" in viewers
    entries = entries_for(case, AuditEntry.Action.ACCESS).filter(actor=animator)
    assert entries.count() == 9
    assert [entry.additional_data for entry in entries].count({"page": "case_detail", "refresh": True}) == 4
    assert chain.verify() == []


def test_someone_who_only_refreshed_the_case_page_is_still_listed(client, login, referent, animator, site):
    """An `HX-Request` header is easy to forge: a reader who never displayed the page is still
    named, with no display counted."""
    case = CaseFactory(site=site, referent=referent, active=True)
    url = reverse("case_detail", kwargs={"public_id": case.public_id})
    assert login(client, animator).get(url, HTTP_HX_REQUEST="true").status_code == 200
    page = login(client, referent).get(url).content.decode()
    viewers = page.split("data-viewers>")[1].split("</ul>")[0]
    assert f"{animator} — seulement des actualisations de la page" in viewers


def test_live_refreshes_are_not_counted_in_the_access_report(client, login, referent, site, admin_user):
    from django.utils import timezone

    from audit import selectors

    case = CaseFactory(site=site, referent=referent, active=True)
    url = reverse("case_detail", kwargs={"public_id": case.public_id})
    login(client, referent)
    for _ in range(2):
        client.get(url)
        client.get(url, HTTP_HX_REQUEST="true")
    today = timezone.localdate()
    [row] = selectors.companies_seen_by(referent, start=today, end=today)
    assert row.displays == 2
