"""The chains' heads anchored outside the database (AUDIT_ANCHOR_PATH): deleting the newest entries,
a whole chain or every entry, or truncating the table, goes unseen by the chain alone; against the
latest anchor, `audit_verify` sees each and names it.

The attacks here are those of someone who may delete: the tables' owner on PostgreSQL (here the
test database's user; it must switch the purge on, as the trigger wants of a keeper), anyone who
can write the file on SQLite. The application's role is refused them (tests/test_audit_roles.py)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from audit import chain
from audit.models import AuditEntry, ChainAnchor
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def anchor_file(settings, tmp_path, monkeypatch):
    path = tmp_path / "audit-anchors.log"
    settings.AUDIT_ANCHOR_PATH = str(path)
    monkeypatch.setattr(chain, "_anchored", {})
    return path


def access(case, days_ago=0):
    return AuditEntry.objects.log_create(
        case,
        force_log=True,
        action=AuditEntry.Action.ACCESS,
        actor=case.referent,
        timestamp=timezone.now() - timedelta(days=days_ago),
    )


@pytest.fixture
def anchored(anchor_file, site, referent):
    """Both chains with entries, their heads anchored; everything verifies."""
    for _ in range(2):
        case = CaseFactory(site=site, referent=referent)
        access(case)
        access(case)
    assert chain.anchor_heads() == 2
    verify_ok()
    return case


def as_owner(sql, params=()):
    """Delete as the tables' owner would: on PostgreSQL it must declare the purge to the trigger
    (`set_config('audit.purge', 'on')`), which it may, being a keeper; SQLite has no trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config('audit.purge', 'on', true)")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config('audit.purge', 'off', true)")


def verify_ok() -> str:
    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def verify_fails() -> str:
    err = StringIO()
    with pytest.raises(CommandError, match="altéré"):
        call_command("audit_verify", stdout=StringIO(), stderr=err)
    return err.getvalue()


def test_deleting_the_newest_entries_is_named(anchored):
    head = chain.heads()["change"][0]
    as_owner("DELETE FROM audit_auditentry WHERE chain = 'change' AND seq > %s", [head - 3])
    assert chain.verify() == []  # the chain alone looks intact
    assert f"change #{head}: newest entries deleted (the chain ends at #{head - 3}" in verify_fails()


def test_deleting_a_whole_chain_is_named(anchored):
    head = chain.heads()["access"][0]
    as_owner("DELETE FROM audit_auditentry WHERE chain = 'access'")
    assert chain.verify() == []
    report = verify_fails()
    assert f"access #{head}: whole chain deleted" in report
    assert "change #" not in report  # the other chain is intact


def test_deleting_everything_is_named(anchored):
    as_owner("DELETE FROM audit_auditentry")
    as_owner("DELETE FROM audit_chainanchor")
    assert chain.verify() == []
    report = verify_fails()
    assert "change #" in report and "access #" in report
    assert report.count("every entry deleted (both chains)") == 2


def test_deleting_the_newest_entries_and_writing_on_is_named(anchored, site, referent):
    """The chain then continues from the last entry kept: it verifies, but the anchored position
    now holds another entry."""
    head = chain.heads()["change"][0]
    as_owner("DELETE FROM audit_auditentry WHERE chain = 'change' AND seq > %s", [head - 3])
    CaseFactory(site=site, referent=referent)
    CaseFactory(site=site, referent=referent)
    assert chain.heads()["change"][0] > head
    assert chain.verify() == []
    assert f"change #{head} (id " in (report := verify_fails())
    assert "anchored entry replaced (newest entries deleted, others written in their place)" in report


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_truncating_the_table_is_named(anchored):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's own deferred checks first
        cursor.execute("TRUNCATE audit_auditentry")
    assert chain.verify() == []
    report = verify_fails()
    assert report.count("table truncated (TRUNCATE)") == 2


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_switching_the_purge_on_then_deleting_as_the_owner_is_named(anchored):
    """The attack of issue 16, by the one role that may still do it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.purge', 'on', true)")
        cursor.execute("DELETE FROM audit_auditentry WHERE chain = 'access'")
    assert "whole chain deleted" in verify_fails()


def test_entries_after_the_latest_anchor_are_the_honest_window(anchored, site, referent):
    """Written since the last anchor, they are protected by the chain alone: the check says how
    many, and names them once they stay unanchored longer than the loop would leave them."""
    CaseFactory(site=site, referent=referent)
    report = chain.check_anchors()
    assert report.problems == [] and report.unanchored["change"] > 0
    assert f"{report.unanchored['change']} entrée(s) écrite(s) depuis" in verify_ok()
    later = chain.check_anchors(now=timezone.now() + timedelta(seconds=chain.ANCHOR_GRACE + 60))
    assert [problem.kind for problem in later.problems] == ["not anchored outside the database for 11 min"]
    chain.anchor_heads()  # the loop's next pass
    assert chain.check_anchors(now=timezone.now() + timedelta(hours=1)).problems == []


def test_a_line_of_the_anchor_file_edited_or_added_without_the_key_is_named(anchored, anchor_file):
    lines = anchor_file.read_text().splitlines()
    first = lines[0].split(" ")
    first[2] = str(int(first[2]) + 5)  # claim a longer chain
    forged = lines[1].split(" ")
    forged[2] = "999999"  # a later head, without the key
    anchor_file.write_text(
        "\n".join([" ".join(first), *lines[1:], "n'importe quoi", " ".join(forged)]) + "\n"
    )
    report = verify_fails()
    assert "anchor file #1: line edited or forged" in report
    assert "anchor file #3: line edited or forged" in report
    assert "anchor file #4: line edited or forged" in report
    assert "#999999" not in report  # the real latest anchor is the one checked
    assert report.count("ALTÉRATION") == 3


def test_a_missing_anchor_file_is_named_once_entries_should_have_been_anchored(anchored, anchor_file):
    anchor_file.unlink()
    assert chain.check_anchors().problems == []  # the entries are a few seconds old
    late = chain.check_anchors(now=timezone.now() + timedelta(hours=1))
    assert [str(problem) for problem in late.problems] == [f"anchor file #0: missing ({anchor_file})"]


def test_the_retention_purge_is_not_taken_for_a_deletion(anchor_file, case):
    """An anchored entry that the purge removed (behind the chain's signed anchor) is accepted."""
    access(case, 500)
    access(case, 400)
    chain.anchor_heads()
    call_command("purge_audit", stdout=StringIO())
    assert not AuditEntry.objects.filter(chain="access").exists()
    assert ChainAnchor.objects.get(chain="access").purged == 2
    verify_ok()


def test_the_purge_refuses_a_trail_whose_anchor_shows_a_deletion(anchored):
    as_owner("DELETE FROM audit_auditentry WHERE chain = 'access'")
    with pytest.raises(CommandError, match="Purge refusée"):
        call_command("purge_audit", stdout=StringIO(), stderr=StringIO())


def test_a_head_is_anchored_once_and_again_when_it_moves(anchor_file, case):
    assert chain.anchor_heads() == 1  # the change chain (the case's creation)
    assert chain.anchor_heads() == 0
    access(case)
    assert chain.anchor_heads() == 1  # the access chain only
    lines = anchor_file.read_text().splitlines()
    assert [line.split(" ")[1] for line in lines] == ["change", "access"]
    assert oct(anchor_file.stat().st_mode & 0o777) == "0o600"


def test_run_timers_once_anchors_the_heads(anchor_file, case):
    out = StringIO()
    call_command("run_timers", "--once", stdout=out)
    assert "1 ancre(s) du journal d'audit écrite(s)" in out.getvalue()
    assert anchor_file.read_text().count("\n") == 1


def test_the_background_loop_anchors_in_a_thread_of_its_own(monkeypatch):
    """The loop's anchoring pass runs at least once a minute, whatever TIMERS_INTERVAL says, in its
    own thread (a slow sweep or mail server does not delay it)."""
    import threading

    from workflows import timers

    passes = {}

    def recording(step, name, interval, stop):
        passes[name] = (step, interval, threading.current_thread().name)
        stop.wait()

    monkeypatch.setattr(timers, "_repeat", recording)
    stop = threading.Event()
    worker = threading.Thread(target=timers.loop, args=(600, stop), name="loop")
    worker.start()
    for _ in range(100):
        if len(passes) == 3:
            break
        stop.wait(0.05)
    stop.set()
    worker.join(10)
    assert passes["audit anchor"] == (chain.anchor_heads, chain.ANCHOR_INTERVAL, "audit-anchors")
    assert passes["deadline"][1] == passes["e-mail"][1] == 600


def test_lines_signed_with_a_former_key_still_verify(anchored, settings):
    former = settings.AUDIT_CHAIN_KEY or settings.SECRET_KEY
    settings.AUDIT_CHAIN_KEY = "nouvelle-clé-du-journal-" + "c" * 20
    settings.AUDIT_CHAIN_KEY_FALLBACKS = [former]
    assert chain.verify() == [] and chain.check_anchors().problems == []
    settings.AUDIT_CHAIN_KEY_FALLBACKS = []
    assert {problem.kind for problem in chain.check_anchors().problems} == {"line edited or forged"}


def test_without_anchors_the_command_says_what_goes_unseen(case, capsys):
    assert "AUDIT_ANCHOR_PATH=off" in verify_ok()
