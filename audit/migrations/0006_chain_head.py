"""The chains' heads in a row each (`audit_chainhead`): a chain's writers lock its row instead of an
advisory lock, and the same statement gives them the head their entry follows.

Until now a writer took `pg_advisory_xact_lock(hashtext('audit.<chain>'))`, then read the chain's
last entry in a statement of its own: the head could not be read with the lock, because a
statement's snapshot is taken before it waits for an advisory lock, and would miss the entry of the
transaction it waited for. A row lock does not have that problem: `SELECT … FOR UPDATE` that waits
for the row reads, once it has it, the row's newest version (READ COMMITTED), that is the head the
previous writer left at its commit.

On PostgreSQL:

- `audit_chain_lock(chain)` locks the chain's row until the end of the transaction and returns its
  head (position, hash); when the row is missing (an empty table: a new database, a test flush), it
  writes it from the chain's last entry, else from its purge anchor, else the start (0, zeros),
  then locks it. Two writers finding no row: the second waits for the first's row and locks it
  once the first has committed. SECURITY DEFINER, so that the application's role, which may only
  read this table, can lock it;
- the INSERT of an entry moves its chain's row to it (trigger `audit_entry_moves_head`, a SECURITY
  DEFINER function too), forward only: the row never goes back to a lower position;
- `audit_purge_batch` (migration 0005) takes the chain's lock through `audit_chain_lock`, as every
  writer now does, instead of the advisory lock.

`manage.py db_roles apply` gives both functions to the keeper, which may read, write and update the
rows of this table; the application's role may read them and call `audit_chain_lock`.

On SQLite, the same trigger moves the row (BEGIN IMMEDIATE serialises the writers; there is no
lock to take). The rows are written here from the chains as they are."""

from django.db import migrations, models

GENESIS = "0" * 64

PG_FORWARD = """
CREATE FUNCTION {s}.audit_chain_lock(p_chain text, OUT head_seq bigint, OUT head_hash text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {s}, pg_temp
AS $$
BEGIN
    IF p_chain IS NULL OR p_chain NOT IN ('change', 'access') THEN
        RAISE EXCEPTION 'audit: unknown chain %', p_chain USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT h.seq, h.entry_hash INTO head_seq, head_hash FROM {s}.audit_chainhead AS h
        WHERE h.chain = p_chain FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO {s}.audit_chainhead (chain, seq, entry_hash)
        SELECT p_chain, coalesce(e.seq, a.first_seq - 1, 0), coalesce(e.entry_hash, a.prev_hash, '{genesis}')
        FROM (SELECT 1) AS one
        LEFT JOIN (SELECT seq, entry_hash FROM {s}.audit_auditentry WHERE chain = p_chain
                   ORDER BY seq DESC LIMIT 1) AS e ON true
        LEFT JOIN {s}.audit_chainanchor AS a ON a.chain = p_chain
        ON CONFLICT (chain) DO NOTHING;
        SELECT h.seq, h.entry_hash INTO head_seq, head_hash FROM {s}.audit_chainhead AS h
            WHERE h.chain = p_chain FOR UPDATE;
    END IF;
END;
$$;

CREATE FUNCTION {s}.audit_head_follows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {s}, pg_temp
AS $$
BEGIN
    UPDATE {s}.audit_chainhead SET seq = NEW.seq, entry_hash = NEW.entry_hash
        WHERE chain = NEW.chain AND seq < NEW.seq;
    IF NOT FOUND THEN
        INSERT INTO {s}.audit_chainhead (chain, seq, entry_hash) VALUES (NEW.chain, NEW.seq, NEW.entry_hash)
        ON CONFLICT (chain) DO UPDATE SET seq = EXCLUDED.seq, entry_hash = EXCLUDED.entry_hash
            WHERE {s}.audit_chainhead.seq < EXCLUDED.seq;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER audit_entry_moves_head AFTER INSERT ON {s}.audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION {s}.audit_head_follows();

REVOKE ALL ON FUNCTION {s}.audit_chain_lock(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION {s}.audit_head_follows() FROM PUBLIC;
"""

PG_BACKWARD = """
DROP TRIGGER IF EXISTS audit_entry_moves_head ON {s}.audit_auditentry;
DROP FUNCTION IF EXISTS {s}.audit_head_follows();
"""
# After the purge function is back to its advisory lock (it calls audit_chain_lock until then).
PG_BACKWARD_LAST = "DROP FUNCTION IF EXISTS {s}.audit_chain_lock(text);"

# Migration 0005's purge function, its first statement changed: the chain's lock is its head row.
PURGE = """
CREATE OR REPLACE FUNCTION {s}.audit_purge_batch(
    p_chain text, p_end bigint, p_prev_hash text, p_purged bigint, p_anchor_hash text
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {s}, pg_temp
AS $$
DECLARE
    v_floor integer;
    v_last bigint;
    v_prev text;
    v_before bigint;
    v_deleted bigint;
    v_switch text := current_setting('audit.purge', true);
BEGIN
    {lock_first}
    IF p_chain IS NULL OR p_chain NOT IN ('change', 'access') THEN
        RAISE EXCEPTION 'audit purge refused: unknown chain %', p_chain USING ERRCODE = 'insufficient_privilege';
    END IF;
    {lock_then}
    SELECT max(seq) INTO v_last FROM {s}.audit_auditentry WHERE chain = p_chain;
    IF v_last IS NULL OR p_end IS NULL OR p_end > v_last + 1 THEN
        RAISE EXCEPTION 'audit purge refused: position % is past the end of chain %', p_end, p_chain
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT pg_has_role(session_user, (SELECT relowner FROM pg_catalog.pg_class
                                      WHERE oid = '{s}.audit_auditentry'::regclass), 'MEMBER') THEN
        SELECT min_days INTO v_floor FROM {s}.audit_purgefloor WHERE chain = p_chain;
        IF v_floor IS NULL THEN
            RAISE EXCEPTION 'audit purge refused: no retention floor for chain %', p_chain
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF EXISTS (SELECT 1 FROM {s}.audit_auditentry WHERE chain = p_chain AND seq < p_end
                   AND "timestamp" >= now() - make_interval(days => v_floor)) THEN
            RAISE EXCEPTION 'audit purge refused: chain % keeps its entries % days (retention floor)',
                p_chain, v_floor USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    SELECT prev_hash INTO v_prev FROM {s}.audit_auditentry WHERE chain = p_chain AND seq = p_end;
    IF NOT FOUND THEN
        SELECT entry_hash INTO v_prev FROM {s}.audit_auditentry WHERE chain = p_chain AND seq < p_end
            ORDER BY seq DESC LIMIT 1;
    END IF;
    IF v_prev IS DISTINCT FROM p_prev_hash THEN
        RAISE EXCEPTION 'audit purge refused: the anchor must follow the last purged entry'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT purged INTO v_before FROM {s}.audit_chainanchor WHERE chain = p_chain FOR UPDATE;
    PERFORM set_config('audit.purge', 'on', true);
    DELETE FROM {s}.audit_auditentry WHERE chain = p_chain AND seq < p_end;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    IF coalesce(v_before, 0) + v_deleted <> p_purged THEN
        RAISE EXCEPTION 'audit purge refused: % entries purged in all, not %',
            coalesce(v_before, 0) + v_deleted, p_purged USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO {s}.audit_chainanchor (chain, first_seq, prev_hash, purged, anchor_hash, updated_at)
        VALUES (p_chain, p_end, p_prev_hash, p_purged, p_anchor_hash, now())
        ON CONFLICT (chain) DO UPDATE SET first_seq = EXCLUDED.first_seq, prev_hash = EXCLUDED.prev_hash,
            purged = EXCLUDED.purged, anchor_hash = EXCLUDED.anchor_hash, updated_at = EXCLUDED.updated_at;
    PERFORM set_config('audit.purge', coalesce(v_switch, ''), true);
    RETURN v_deleted;
END;
$$;
"""
# 0005 took the advisory lock first; the head row's lock comes after the chain's name is checked
# (audit_chain_lock would refuse an unknown chain too, with its own message).
HEAD_LOCK = "PERFORM 1 FROM {s}.audit_chain_lock(p_chain);"
ADVISORY_LOCK = "PERFORM pg_advisory_xact_lock(hashtext('audit.' || p_chain));"

SQLITE_FORWARD = """
CREATE TRIGGER audit_entry_moves_head AFTER INSERT ON audit_auditentry
BEGIN
    INSERT INTO audit_chainhead (chain, seq, entry_hash) VALUES (NEW.chain, NEW.seq, NEW.entry_hash)
    ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, entry_hash = excluded.entry_hash
        WHERE excluded.seq > audit_chainhead.seq;
END
"""
SQLITE_BACKWARD = "DROP TRIGGER IF EXISTS audit_entry_moves_head"


def _pg(template: str, schema_editor, lock_first: str = "", lock_then: str = "") -> str:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = connection.ops.quote_name(cursor.fetchone()[0])
    return (
        template.replace("{lock_first}", lock_first)
        .replace("{lock_then}", lock_then)
        .replace("{s}", schema)
        .replace("{genesis}", GENESIS)
    )


def _heads(connection) -> list[tuple[str, int, str]]:
    """Each chain's head as the chain stands: its last entry, else its purge anchor."""
    found = []
    with connection.cursor() as cursor:
        for chain in ("change", "access"):
            cursor.execute(
                "SELECT seq, entry_hash FROM audit_auditentry WHERE chain = %s ORDER BY seq DESC LIMIT 1",
                [chain],
            )
            last = cursor.fetchone()
            if last is None:
                cursor.execute("SELECT first_seq - 1, prev_hash FROM audit_chainanchor WHERE chain = %s", [chain])
                last = cursor.fetchone()
            if last is not None:
                found.append((chain, last[0], last[1]))
    return found


def forward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        schema_editor.execute(_pg(PG_FORWARD, schema_editor), params=None)
        schema_editor.execute(_pg(PURGE, schema_editor, lock_then=HEAD_LOCK), params=None)
    elif connection.vendor == "sqlite":
        schema_editor.execute(SQLITE_FORWARD, params=None)
    with connection.cursor() as cursor:
        for chain, seq, entry_hash in _heads(connection):
            cursor.execute(
                "INSERT INTO audit_chainhead (chain, seq, entry_hash) VALUES (%s, %s, %s)", [chain, seq, entry_hash]
            )


def backward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        schema_editor.execute(_pg(PG_BACKWARD, schema_editor), params=None)
        schema_editor.execute(_pg(PURGE, schema_editor, lock_first=ADVISORY_LOCK), params=None)
        schema_editor.execute(_pg(PG_BACKWARD_LAST, schema_editor), params=None)
    elif connection.vendor == "sqlite":
        schema_editor.execute(SQLITE_BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_purge_by_keeper_only")]

    operations = [
        migrations.CreateModel(
            name="ChainHead",
            fields=[
                (
                    "chain",
                    models.CharField(
                        choices=[("change", "changes"), ("access", "accesses")],
                        max_length=10,
                        primary_key=True,
                        serialize=False,
                        verbose_name="chain",
                    ),
                ),
                ("seq", models.PositiveBigIntegerField(verbose_name="last position")),
                ("entry_hash", models.CharField(max_length=64, verbose_name="hash of the last entry")),
            ],
            options={"verbose_name": "chain head", "verbose_name_plural": "chain heads"},
        ),
        migrations.RunPython(forward, backward),
    ]
