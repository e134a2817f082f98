"""On PostgreSQL, a chain's writer takes the chain's lock and reads its head in one statement:
`audit_chain_lock(chain)`.

Until now a writer took the chain's advisory lock (`pg_advisory_xact_lock(hashtext('audit.'
|| chain))`) in one statement and read the chain's last entry in another. They could not simply be
one SELECT: a statement's snapshot is taken before it waits for the lock, so it would miss the
entry of the writer it waited for. The function runs them as two statements of its own: PL/pgSQL
gives each statement of a VOLATILE function a new snapshot (READ COMMITTED), taken here once the
lock is granted, so the head it reads is the one the previous writer committed (declared STABLE,
it would read with its caller's snapshot: two writers then took the same position in
tests/test_claim_race.py). It returns that head: the last entry's position and hash, else (the
chain purged whole, or never written) the purge anchor's first position minus one and the hash it
follows, else (0, the genesis hash).

The lock is the same advisory lock as before (the purge function of migration 0005 takes it too),
held until the transaction ends; nothing is written. The function runs with its caller's rights
(SECURITY INVOKER) and does only what its caller may do already (take an advisory lock, read the
audit tables): like any function, everyone may call it, so that no role that writes entries today
loses that right with this migration; `manage.py db_roles` changes nothing for it."""

from django.db import migrations

GENESIS = "0" * 64

FORWARD = """
CREATE FUNCTION {s}.audit_chain_lock(p_chain text, OUT head_seq bigint, OUT head_hash text)
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('audit.' || p_chain));
    -- A statement of its own: its snapshot is taken now, once the lock is granted.
    SELECT e.seq, e.entry_hash INTO head_seq, head_hash FROM {s}.audit_auditentry AS e
        WHERE e.chain = p_chain ORDER BY e.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT a.first_seq - 1, a.prev_hash INTO head_seq, head_hash FROM {s}.audit_chainanchor AS a
            WHERE a.chain = p_chain;
        IF NOT FOUND THEN
            head_seq := 0;
            head_hash := '{genesis}';
        END IF;
    END IF;
END;
$$;
"""

BACKWARD = "DROP FUNCTION IF EXISTS {s}.audit_chain_lock(text);"


def _sql(template: str, schema_editor) -> str:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = connection.ops.quote_name(cursor.fetchone()[0])
    return template.replace("{s}", schema).replace("{genesis}", GENESIS)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_sql(FORWARD, schema_editor), params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_sql(BACKWARD, schema_editor), params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_purge_by_keeper_only")]
    operations = [migrations.RunPython(forward, backward)]
