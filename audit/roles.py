"""The PostgreSQL roles of a production database, so that the application cannot erase its audit
trail (`manage.py db_roles`, README « Mise en production », docs/gdpr.md §6).

Three roles:

- the *owner* (administrative role): owns the database, its schema and every table; runs
  `migrate` and `db_roles apply`. It can do anything to the trail, trigger included: against it,
  the protection is detection (the chains' heads anchored outside the database, AUDIT_ANCHOR_PATH);
- the *application*'s role (the DATABASE_URL of the daphne processes, run_timers and the scheduled
  commands): reads and writes the business tables, only reads and appends the audit tables (no
  UPDATE, DELETE or TRUNCATE, no ownership), and may call the two functions of migration 0005
  that purge a chain's old prefix (bounded by the retention floor) and redact entries;
- the *keeper* (without login): owns those two SECURITY DEFINER functions, with just the
  privileges they need. The trigger honours the purge switch only for a member of the owner or of
  the keeper, so the application's role cannot switch it on.
"""

import re
from dataclasses import dataclass

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")

AUDIT_TABLES = ("audit_auditentry", "audit_chainanchor", "audit_purgefloor")
PURGE_FUNCTION = "audit_purge_batch(text, bigint, text, bigint, text)"
REDACT_FUNCTION = "audit_redact(bigint[], timestamptz, text[])"
REDACTION_COLUMNS = (
    "changes",
    "changes_text",
    "object_repr",
    "serialized_data",
    "additional_data",
    "redacted_at",
    "redaction_hash",
)


def quote(name: str) -> str:
    if not NAME.match(name):
        raise ValueError(name)
    return f'"{name}"'


@dataclass(frozen=True)
class Roles:
    owner: str = "tds_owner"
    app: str = "tds_app"
    keeper: str = "tds_audit"
    schema: str = "public"

    def __post_init__(self):
        for name in (self.owner, self.app, self.keeper, self.schema):
            quote(name)  # ValueError on a name that is not a plain identifier
        if len({self.owner, self.app, self.keeper}) != 3:
            raise ValueError("three distinct roles")


def setup_sql(roles: Roles, database: str) -> list[str]:
    """Once, as a PostgreSQL superuser: the three roles and the database, owned by the owner. Set
    the passwords of the two login roles afterwards (psql: \\password)."""
    o, a, k = quote(roles.owner), quote(roles.app), quote(roles.keeper)
    return [
        f"CREATE ROLE {o} LOGIN",
        f"CREATE ROLE {a} LOGIN",
        f"CREATE ROLE {k} NOLOGIN",
        # The owner may hand its functions over to the keeper and replace them in later migrations.
        f"GRANT {k} TO {o}",
        f"CREATE DATABASE {quote(database)} OWNER {o}",
    ]


def schema_sql(roles: Roles) -> list[str]:
    """Once, as a superuser connected to the new database: the schema belongs to the owner, nobody
    else creates anything in it."""
    o, a, k, s = quote(roles.owner), quote(roles.app), quote(roles.keeper), quote(roles.schema)
    return [
        f"ALTER SCHEMA {s} OWNER TO {o}",
        f"REVOKE ALL ON SCHEMA {s} FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA {s} TO {a}, {k}",
    ]


def grants_sql(roles: Roles, floors: dict[str, int]) -> list[str]:
    """After every `migrate`, as the owner: what each role may do. `floors` are the retention
    floors in days ({chain: days}) below which the application's role cannot purge."""
    a, k, s = quote(roles.app), quote(roles.keeper), quote(roles.schema)
    tables = ", ".join(f"{s}.{table}" for table in AUDIT_TABLES)
    entries, anchors, floor = (f"{s}.{table}" for table in AUDIT_TABLES)
    purge, redact = f"{s}.{PURGE_FUNCTION}", f"{s}.{REDACT_FUNCTION}"
    statements = [
        # The application: every business table, its sequences; the audit tables read and appended.
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {a}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {a}",
        # Which migrations ran is the administrator's record.
        f"REVOKE INSERT, UPDATE, DELETE ON {s}.django_migrations FROM {a}",
        f"REVOKE ALL ON {tables} FROM {a}",
        f"GRANT SELECT, INSERT ON {entries} TO {a}",
        f"GRANT SELECT ON {anchors}, {floor} TO {a}",
        # The keeper: what the two functions do, nothing more.
        f"REVOKE ALL ON {tables} FROM {k}",
        f"GRANT SELECT, DELETE ON {entries} TO {k}",
        f"GRANT UPDATE ({', '.join(REDACTION_COLUMNS)}) ON {entries} TO {k}",
        f"GRANT SELECT, INSERT, UPDATE ON {anchors} TO {k}",
        f"GRANT USAGE ON SEQUENCE {s}.audit_chainanchor_id_seq TO {k}",
        f"GRANT SELECT ON {floor} TO {k}",
        # A function's new owner must be allowed to create in its schema, at that moment only.
        f"GRANT CREATE ON SCHEMA {s} TO {k}",
        f"ALTER FUNCTION {purge} OWNER TO {k}",
        f"ALTER FUNCTION {redact} OWNER TO {k}",
        f"REVOKE CREATE ON SCHEMA {s} FROM {k}",
        f"REVOKE ALL ON FUNCTION {purge}, {redact} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {purge}, {redact} TO {a}",
    ]
    for chain, days in sorted(floors.items()):
        statements.append(
            f"INSERT INTO {floor} (chain, min_days) VALUES ('{chain}', {int(days)}) "
            "ON CONFLICT (chain) DO UPDATE SET min_days = EXCLUDED.min_days"
        )
    return statements


@dataclass(frozen=True)
class Powers:
    """What the role running now may do to the audit trail."""

    role: str
    superuser: bool
    owner: bool  # member of the role that owns the audit table
    keeper: bool  # the trigger honours its purge switch
    can_change: list[str]  # "UPDATE audit_auditentry", "TRUNCATE audit_chainanchor", …
    can_purge: bool  # may call the bounded purge function

    @property
    def can_erase(self) -> bool:
        return self.superuser or self.owner or self.keeper or bool(self.can_change)


def powers(connection) -> Powers:
    """Read from PostgreSQL's catalogue what the current role may do to the audit tables."""
    checks = []
    for table in AUDIT_TABLES:
        checks += [
            (f"UPDATE {table}", f"has_any_column_privilege(current_user, '{table}', 'UPDATE')"),
            (f"DELETE {table}", f"has_table_privilege(current_user, '{table}', 'DELETE')"),
            (f"TRUNCATE {table}", f"has_table_privilege(current_user, '{table}', 'TRUNCATE')"),
        ]
    checks.append(
        (f"INSERT {AUDIT_TABLES[1]}", f"has_table_privilege(current_user, '{AUDIT_TABLES[1]}', 'INSERT')")
    )
    checks.append(
        (f"INSERT {AUDIT_TABLES[2]}", f"has_table_privilege(current_user, '{AUDIT_TABLES[2]}', 'INSERT')")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, r.rolsuper,"
            " pg_has_role(current_user, c.relowner, 'MEMBER'), audit_keeper(),"
            f" has_function_privilege(current_user, '{PURGE_FUNCTION}', 'EXECUTE'), "
            + ", ".join(sql for _label, sql in checks)
            + " FROM pg_roles r, pg_class c"
            " WHERE r.rolname = current_user AND c.oid = 'audit_auditentry'::regclass"
        )
        row = cursor.fetchone()
    role, superuser, owner, keeper, can_purge, *allowed = row
    return Powers(
        role=role,
        superuser=superuser,
        owner=owner,
        keeper=keeper,
        can_change=[label for (label, _sql), yes in zip(checks, allowed, strict=True) if yes],
        can_purge=can_purge,
    )
