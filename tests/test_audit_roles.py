"""PostgreSQL: the application's database role cannot erase the audit trail, even when it switches
the purge on, and still purges (bounded by the retention floor) and redacts through the keeper's
functions (migration 0005, audit/roles.py, `manage.py db_roles`).

The test database's user is a superuser, which can do anything: the attacks run as real
non-superuser roles created inside the test's transaction (rolled back with it) and taken with
SET SESSION AUTHORIZATION, so that both current_user and session_user are that role."""

import contextlib
import os
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import chain, roles
from audit.actors import system_actor
from audit.models import AuditEntry, ChainAnchor
from casework import retention
from casework.models import Case
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db
postgresql = pytest.mark.skipif("connection.vendor != 'postgresql'")

FLOORS = {"access": 365, "change": 2190}

# The attacks of issue 16, as SQL the application's role could send (an injection, a shell on the
# application's host with its DATABASE_URL).
ATTACKS = {
    "delete the newest entries": [
        "DELETE FROM audit_auditentry WHERE chain = 'change'"
        " AND seq > (SELECT max(seq) - 2 FROM audit_auditentry WHERE chain = 'change')"
    ],
    "delete a whole chain": ["DELETE FROM audit_auditentry WHERE chain = 'access'"],
    "delete everything": ["DELETE FROM audit_auditentry", "DELETE FROM audit_chainanchor"],
    # (SET CONSTRAINTS: the test's own inserts left deferred foreign key checks, which would stop
    # the TRUNCATE for another reason.)
    "truncate": ["SET CONSTRAINTS ALL IMMEDIATE", "TRUNCATE audit_auditentry"],
    "truncate with its anchors": [
        "SET CONSTRAINTS ALL IMMEDIATE",
        "TRUNCATE audit_auditentry, audit_chainanchor",
    ],
    "switch the purge on, then delete": [
        "SELECT set_config('audit.purge', 'on', true)",
        "DELETE FROM audit_auditentry WHERE chain = 'access'",
    ],
    "switch the purge on, then rewrite an entry": [
        "SELECT set_config('audit.purge', 'on', true)",
        "UPDATE audit_auditentry SET object_repr = 'x', redacted_at = now()"
        " WHERE id = (SELECT min(id) FROM audit_auditentry)",
    ],
    "move an anchor": [
        "SELECT set_config('audit.purge', 'on', true)",
        "INSERT INTO audit_chainanchor (chain, first_seq, prev_hash, purged, anchor_hash, updated_at)"
        " VALUES ('access', 1000, repeat('0', 64), 999, '', now())",
    ],
    "lower the retention floor": ["UPDATE audit_purgefloor SET min_days = 1"],
    "turn the triggers off": ["SET LOCAL session_replication_role = replica", "DELETE FROM audit_auditentry"],
    "disable the trigger": ["ALTER TABLE audit_auditentry DISABLE TRIGGER audit_entry_immutable"],
    "take the keeper's role": ["SELECT 1"],  # replaced below by a SET ROLE to the keeper
}


def _run(*statements, params=None):
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, params)


@contextlib.contextmanager
def as_role(role: str):
    """Run the block as `role` (current_user and session_user), then return to the test's user."""
    _run(f"SET SESSION AUTHORIZATION {roles.quote(role)}")
    try:
        yield
    finally:
        _run("RESET SESSION AUTHORIZATION")


@pytest.fixture
def production_roles(db):
    """The application's role and the keeper, with the grants of `manage.py db_roles apply` (the
    test database's user, which owns the tables, plays the administrative role). Roles are shared
    by the whole PostgreSQL server: names of this process only, and created inside the test's
    transaction, so that they go with it."""
    suffix = f"{os.getpid()}"
    names = roles.Roles(
        owner=connection.settings_dict["USER"] or "postgres",
        app=f"tds_t{suffix}_app",
        keeper=f"tds_t{suffix}_keeper",
    )
    _run(
        f"CREATE ROLE {roles.quote(names.app)} NOLOGIN",
        f"CREATE ROLE {roles.quote(names.keeper)} NOLOGIN",
        f"GRANT USAGE ON SCHEMA public TO {roles.quote(names.app)}, {roles.quote(names.keeper)}",
        *roles.grants_sql(names, FLOORS),
    )
    return names


@pytest.fixture
def former_recipe_role(db):
    """An application role with what the former README gave it (every privilege on every table,
    TRUNCATE too), but not the tables' ownership: only the trigger stands in its way."""
    role = f"tds_t{os.getpid()}_broad"
    _run(
        f"CREATE ROLE {roles.quote(role)} NOLOGIN",
        f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {roles.quote(role)}",
        f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {roles.quote(role)}",
    )
    return role


@pytest.fixture
def trail(site, referent):
    """Both chains with a few entries each, verified."""
    for _ in range(2):
        case = CaseFactory(site=site, referent=referent)
        for _ in range(2):
            AuditEntry.objects.log_create(
                case, force_log=True, action=AuditEntry.Action.ACCESS, actor=referent
            )
    assert chain.verify() == []
    return case


def _snapshot():
    return list(AuditEntry.objects.order_by("pk").values_list("pk", "entry_hash", "object_repr")), list(
        ChainAnchor.objects.values_list("chain", "first_seq")
    )


# What PostgreSQL answers: a privilege it does not have, or the trigger.
NO_PRIVILEGE = r"permission denied|must be owner|must be superuser"
TRIGGER = r"audit entries (are kept|cannot be changed)"


def _attack(name, role, match, keeper=None):
    statements = ATTACKS[name]
    if name == "take the keeper's role":
        statements = [f"SET ROLE {roles.quote(keeper)}", "DELETE FROM audit_auditentry"]
    with as_role(role), pytest.raises(DatabaseError, match=match), transaction.atomic():
        _run(*statements)


@postgresql
@pytest.mark.parametrize("name", ATTACKS)
def test_the_application_role_of_the_production_setup_cannot_erase_the_trail(name, production_roles, trail):
    before = _snapshot()
    _attack(name, production_roles.app, NO_PRIVILEGE, production_roles.keeper)
    assert _snapshot() == before
    assert chain.verify() == []


@postgresql
@pytest.mark.parametrize(
    "name",
    [
        "delete the newest entries",
        "delete a whole chain",
        "delete everything",
        "truncate",
        "truncate with its anchors",
        "switch the purge on, then delete",
        "switch the purge on, then rewrite an entry",
        "move an anchor",
    ],
)
def test_a_role_granted_every_privilege_is_still_refused_by_the_trigger(name, former_recipe_role, trail):
    """The trigger is the second lock: it honours the purge switch only for a keeper of the trail
    (member of the tables' owner or of the keeper role), and refuses TRUNCATE to anyone else."""
    before = _snapshot()
    _attack(name, former_recipe_role, TRIGGER)
    assert _snapshot() == before


@postgresql
def test_the_keeper_function_cannot_be_called_to_purge_recent_entries(former_recipe_role, trail):
    """Called directly by the application's role, the purge function keeps every entry younger
    than the retention floor, whatever the arguments."""
    _run(f"GRANT EXECUTE ON FUNCTION {roles.PURGE_FUNCTION} TO {roles.quote(former_recipe_role)}")
    head = AuditEntry.objects.filter(chain="access").order_by("-seq").first()
    before = _snapshot()
    with (
        as_role(former_recipe_role),
        pytest.raises(DatabaseError, match="retention floor"),
        transaction.atomic(),
    ):
        _run(
            "SELECT audit_purge_batch('access', %s, %s, %s, '')",
            params=[head.seq + 1, head.entry_hash, head.seq],
        )
    assert _snapshot() == before


@postgresql
def test_the_application_works_purges_and_redacts_as_its_role(
    production_roles, site, referent, client, login
):
    """Everything the application does to the trail goes through as its role: pages that write
    entries, the retention purge (old entries only) and the redaction of an anonymised case."""
    from django.urls import reverse

    with as_role(production_roles.app):
        case = CaseFactory(site=site, referent=referent, closed=True, summary="Texte à effacer")
        for days in (800, 400, 10):
            AuditEntry.objects.log_create(
                case,
                force_log=True,
                action=AuditEntry.Action.ACCESS,
                actor=referent,
                timestamp=timezone.now() - timedelta(days=days),
            )
        Case.objects.filter(pk=case.pk).update(closed_at=timezone.now() - timedelta(days=2000))
        result = retention.anonymise_case(actor=system_actor(), case=case)
        call_command("purge_audit", stdout=StringIO())
        page = login(client, referent).get(reverse("case_detail", kwargs={"public_id": case.public_id}))
        assert page.status_code == 200
        assert chain.verify() == []
    assert result.entries_redacted > 0
    assert AuditEntry.objects.filter(chain="access").count() == 2  # the 10-day-old one, the page's
    anchor = ChainAnchor.objects.get(chain="access")
    assert anchor.purged == 2


@postgresql
def test_the_application_role_cannot_purge_below_the_floor_the_owner_can(production_roles, case):
    for days in (200, 100):
        AuditEntry.objects.log_create(
            case,
            force_log=True,
            action=AuditEntry.Action.ACCESS,
            actor=case.referent,
            timestamp=timezone.now() - timedelta(days=days),
        )
    with as_role(production_roles.app), pytest.raises(CommandError, match="refuse la purge"):
        call_command("purge_audit", access_days=30, stdout=StringIO())
    assert AuditEntry.objects.filter(chain="access").count() == 2
    call_command("purge_audit", access_days=30, stdout=StringIO())  # the administrator may
    assert AuditEntry.objects.filter(chain="access").count() == 0
    assert chain.verify() == []


@postgresql
def test_the_check_tells_a_safe_application_role_from_one_that_can_erase(
    production_roles, former_recipe_role, capsys
):
    with as_role(production_roles.app):
        call_command("db_roles", "check")
    assert "ne peut ni modifier, ni supprimer" in capsys.readouterr().out
    with as_role(former_recipe_role), pytest.raises(CommandError, match="DELETE audit_auditentry"):
        call_command("db_roles", "check")
    with pytest.raises(CommandError, match="superutilisateur|propriétaire"):  # the test database's user
        call_command("db_roles", "check")


@postgresql
def test_apply_sets_the_grants_and_the_floors(production_roles, capsys, settings):
    settings.AUDIT_ACCESS_RETENTION_DAYS = 180
    call_command("db_roles", "apply", app=production_roles.app, keeper=production_roles.keeper)
    assert "consultations 180 jours" in capsys.readouterr().out
    with connection.cursor() as cursor:
        cursor.execute("SELECT min_days FROM audit_purgefloor WHERE chain = 'access'")
        assert cursor.fetchone() == (180,)
        cursor.execute(
            "SELECT pg_get_userbyid(proowner) FROM pg_proc"
            " WHERE proname IN ('audit_purge_batch', 'audit_redact')"
        )
        assert {owner for (owner,) in cursor.fetchall()} == {production_roles.keeper}


def test_the_setup_script_creates_three_roles_and_a_database_owned_by_the_administrator(capsys):
    call_command("db_roles", "setup", database="territoires")
    script = capsys.readouterr().out
    for line in (
        'CREATE ROLE "tds_owner" LOGIN;',
        'CREATE ROLE "tds_app" LOGIN;',
        'CREATE ROLE "tds_audit" NOLOGIN;',
        'CREATE DATABASE "territoires" OWNER "tds_owner";',
        '\\connect "territoires"',
    ):
        assert line in script
    call_command("db_roles", "grants")
    grants = capsys.readouterr().out
    to_app = [line for line in grants.splitlines() if line.endswith('TO "tds_app";') and "audit_" in line]
    assert to_app == [  # on the audit tables: read and append, nothing else
        'GRANT SELECT, INSERT ON "public".audit_auditentry TO "tds_app";',
        'GRANT SELECT ON "public".audit_chainanchor, "public".audit_purgefloor TO "tds_app";',
        'GRANT EXECUTE ON FUNCTION "public".audit_purge_batch(text, bigint, text, bigint, text), '
        '"public".audit_redact(bigint[], timestamptz, text[]) TO "tds_app";',
    ]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["drop"], "Action inconnue"),
        (["setup", "--app", "tds;drop"], "invalides"),
        (["setup", "--app", "tds_owner"], "distincts"),
        (["setup", "--database", "x y"], "Nom de base invalide"),
    ],
)
def test_bad_names_are_a_french_error(arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("db_roles", *arguments)


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_sqlite_says_it_has_no_roles():
    with pytest.raises(CommandError, match="SQLite n'a pas de rôles"):
        call_command("db_roles", "check")


@postgresql
def test_the_production_recipe_migrates_as_the_administrator_and_runs_the_application_without_erasing_power(
    tmp_path,
):
    """README « Mise en production », for real: `db_roles setup` run by a superuser, `migrate` and
    `db_roles apply` as the administrative role (not a superuser: the migrations must pass as it),
    then the application's role checks itself, purges through the function, and cannot delete."""
    import subprocess
    import sys

    import psycopg

    from tests import live

    suffix = f"{os.getpid()}"
    names = roles.Roles(
        owner=f"tds_r{suffix}_owner", app=f"tds_r{suffix}_app", keeper=f"tds_r{suffix}_keeper"
    )
    database = f"territoires_recipe_{suffix}"
    admin = connection.settings_dict
    base = f"postgresql://{{user}}@{admin['HOST'] or '127.0.0.1'}:{admin['PORT'] or 5432}/{database}"

    def superuser(statements, dbname="postgres"):
        with psycopg.connect(
            host=admin["HOST"] or "127.0.0.1",
            port=admin["PORT"] or 5432,
            user=admin["USER"],
            dbname=dbname,
            autocommit=True,
        ) as conn:
            for statement in statements:
                conn.execute(statement)

    def manage(user, *arguments):
        env = live.server_env(DATABASE_URL=base.format(user=user))
        return subprocess.run(
            [sys.executable, "manage.py", *arguments], cwd=live.ROOT, env=env, capture_output=True, text=True
        )

    superuser(roles.setup_sql(names, database))
    try:
        superuser(roles.schema_sql(names), dbname=database)
        flags = f"owner={names.owner!r}, app={names.app!r}, keeper={names.keeper!r}"
        administrator = manage(  # one process each: Django's start-up is most of the time
            names.owner,
            "shell",
            "-c",
            f"from django.core.management import call_command; call_command('migrate', verbosity=0); "
            f"call_command('db_roles', 'apply', {flags})",
        )
        assert "Droits appliqués" in administrator.stdout, administrator.stderr
        application = manage(
            names.app,
            "shell",
            "-c",
            "from django.core.management import call_command; call_command('db_roles', 'check'); "
            "call_command('purge_audit')",
        )
        assert "ne peut ni modifier" in application.stdout, application.stderr
        assert "Purge terminée" in application.stdout, application.stderr
        with psycopg.connect(base.format(user=names.app).replace("postgresql://", "postgres://")) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT set_config('audit.purge', 'on', true)")
                conn.execute("DELETE FROM audit_auditentry")
    finally:
        superuser([f"DROP DATABASE IF EXISTS {roles.quote(database)} WITH (FORCE)"])
        superuser(
            [f"DROP ROLE IF EXISTS {roles.quote(name)}" for name in (names.app, names.owner, names.keeper)]
        )
