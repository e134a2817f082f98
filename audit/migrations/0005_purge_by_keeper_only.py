"""On PostgreSQL, the application's database role can no longer switch the purge on.

Until now the trigger of migrations 0002/0004 let through any DELETE (and the redaction's UPDATE)
of a transaction that had set `audit.purge` to 'on': any role may set that variable, so the
application's role could erase the trail. Now:

- the trigger honours the switch only for a *keeper* of the trail: a member of the role that owns
  the audit table (the administrative role that migrates) or of the role that owns the purge
  function (`manage.py db_roles` hands it to a role of its own, without login). The application's
  role is neither: with the switch on, its DELETE or UPDATE is still refused;
- a new anchor (INSERT) needs the switch too, as its change did;
- a TRUNCATE of the audit tables by anyone but a keeper is refused (test databases are emptied
  by their owner, a keeper);
- the retention purge and the redaction run through two SECURITY DEFINER functions the
  application's role may call, `audit_purge_batch` and `audit_redact`, which do only what the
  application's code did, bounded: the purge deletes a prefix of a chain whose every entry is older
  than the chain's retention floor (table `audit_purgefloor`, written by the administrative role),
  and moves the chain's anchor to the entry that follows it; the redaction replaces the redactable
  content of change entries not redacted yet by the fixed marker. Neither can delete an entry
  younger than the floor or write content of the caller's choosing. A session whose login role
  belongs to the tables' owner (the administrator, the test database's user) is not held to the
  floor: it could delete directly anyway. The functions switch `audit.purge` on in their body,
  for their own statements: a function's SET clause on that placeholder variable is refused to a
  role that is not a superuser, such as the administrative role that runs this migration.

The application's role has no UPDATE, DELETE or TRUNCATE privilege on the audit tables either in
the production setup (`manage.py db_roles`): the trigger is the second lock, for a role granted
too much. Against the tables' owner (who can disable the trigger) the protection is detection: the
chains' heads anchored outside the database (AUDIT_ANCHOR_PATH, `audit_verify`).

`audit_purgefloor` is not a Django model: the test runner's flush must not empty it, and only the
administrative role writes it. Its rows start at the retention settings read at migration time."""

from django.conf import settings
from django.db import migrations

REDACTED = "[anonymisé]"  # audit.chain.REDACTED

# The redaction's columns (migration 0004); every other column must stay as it is.
REDACTION_COLUMNS = (
    "changes",
    "changes_text",
    "object_repr",
    "serialized_data",
    "additional_data",
    "redacted_at",
    "redaction_hash",
)

PURGE_SIGNATURE = "audit_purge_batch(text, bigint, text, bigint, text)"
REDACT_SIGNATURE = "audit_redact(bigint[], timestamptz, text[])"

FORWARD = """
CREATE TABLE {s}.audit_purgefloor (
    chain varchar(10) PRIMARY KEY CHECK (chain IN ('change', 'access')),
    min_days integer NOT NULL CHECK (min_days >= 1)
);
INSERT INTO {s}.audit_purgefloor (chain, min_days) VALUES ('access', {access_days}), ('change', {change_days});

-- The retention purge of one batch: delete the entries of `p_chain` before position `p_end` and
-- move the chain's anchor there. The caller (audit.chain.purge) computes the anchor and its HMAC
-- (the key is not in the database); the function checks every value it can.
CREATE FUNCTION {s}.audit_purge_batch(
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
    PERFORM pg_advisory_xact_lock(hashtext('audit.' || p_chain));
    IF p_chain IS NULL OR p_chain NOT IN ('change', 'access') THEN
        RAISE EXCEPTION 'audit purge refused: unknown chain %', p_chain USING ERRCODE = 'insufficient_privilege';
    END IF;
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

-- The redaction of change entries (the anonymisation of a case): their redactable content becomes
-- the marker (the names of the changed fields stay), as audit.chain.redacted_content writes it;
-- the caller gives the time and each entry's redaction HMAC.
CREATE FUNCTION {s}.audit_redact(p_ids bigint[], p_at timestamptz, p_hashes text[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {s}, pg_temp
AS $$
DECLARE
    v_count integer;
    v_switch text := current_setting('audit.purge', true);
BEGIN
    IF p_at IS NULL OR coalesce(cardinality(p_ids), 0) <> coalesce(cardinality(p_hashes), 0) THEN
        RAISE EXCEPTION 'audit redaction refused: one hash per entry' USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM set_config('audit.purge', 'on', true);
    UPDATE {s}.audit_auditentry AS e SET
        changes = CASE WHEN jsonb_typeof(e.changes) = 'object' THEN coalesce(
            (SELECT jsonb_object_agg(k, to_jsonb('{redacted}'::text)) FROM jsonb_object_keys(e.changes) AS k),
            '{{}}'::jsonb) END,
        changes_text = '',
        object_repr = '{redacted}',
        serialized_data = NULL,
        additional_data = NULL,
        redacted_at = p_at,
        redaction_hash = r.hash
    FROM unnest(p_ids, p_hashes) AS r(id, hash)
    WHERE e.id = r.id AND e.chain = 'change' AND e.redacted_at IS NULL;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count <> coalesce(cardinality(p_ids), 0) THEN
        RAISE EXCEPTION 'audit redaction refused: only change entries not redacted yet'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM set_config('audit.purge', coalesce(v_switch, ''), true);
    RETURN v_count;
END;
$$;

REVOKE ALL ON FUNCTION {s}.{purge} FROM PUBLIC;
REVOKE ALL ON FUNCTION {s}.{redact} FROM PUBLIC;

-- A keeper of the trail: the running role is a member of the audit table's owner or of the purge
-- function's owner (inside the SECURITY DEFINER functions, the running role is their owner).
CREATE FUNCTION {s}.audit_keeper() RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT pg_has_role(current_user, p.proowner, 'MEMBER') OR pg_has_role(current_user, c.relowner, 'MEMBER')
    FROM pg_catalog.pg_proc AS p, pg_catalog.pg_class AS c
    WHERE p.oid = '{s}.{purge}'::regprocedure AND c.oid = '{s}.audit_auditentry'::regclass
$$;

CREATE OR REPLACE FUNCTION {s}.audit_refuse_changes() RETURNS trigger AS $$
DECLARE
    purging boolean := coalesce(current_setting('audit.purge', true), '') = 'on' AND {s}.audit_keeper();
BEGIN
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'audit_auditentry' THEN
        IF purging AND OLD.redacted_at IS NULL AND NEW.redacted_at IS NOT NULL
           AND (to_jsonb(NEW) - ARRAY[{columns}]) = (to_jsonb(OLD) - ARRAY[{columns}]) THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit entries cannot be changed, except the redaction of their content'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF purging THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'audit entries are kept: only the retention purge removes them'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION {s}.audit_refuse_truncate() RETURNS trigger AS $$
BEGIN
    IF {s}.audit_keeper() THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit entries are kept: only the owner of the audit tables may empty them'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

-- An anchor is written by the purge only: its INSERT too (a new anchor could hide a deleted prefix).
DROP TRIGGER audit_anchor_guarded ON {s}.audit_chainanchor;
CREATE TRIGGER audit_anchor_guarded BEFORE INSERT OR UPDATE OR DELETE ON {s}.audit_chainanchor
    FOR EACH ROW EXECUTE FUNCTION {s}.audit_refuse_changes();

CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON {s}.audit_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.audit_refuse_truncate();
CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON {s}.audit_chainanchor
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.audit_refuse_truncate();
"""

# Back to migration 0004's function.
BACKWARD = """
DROP TRIGGER IF EXISTS audit_anchor_no_truncate ON {s}.audit_chainanchor;
DROP TRIGGER IF EXISTS audit_entry_no_truncate ON {s}.audit_auditentry;
DROP FUNCTION IF EXISTS {s}.audit_refuse_truncate();
DROP TRIGGER audit_anchor_guarded ON {s}.audit_chainanchor;
CREATE TRIGGER audit_anchor_guarded BEFORE UPDATE OR DELETE ON {s}.audit_chainanchor
    FOR EACH ROW EXECUTE FUNCTION {s}.audit_refuse_changes();
CREATE OR REPLACE FUNCTION {s}.audit_refuse_changes() RETURNS trigger AS $$
DECLARE
    purging boolean := coalesce(current_setting('audit.purge', true), '') = 'on';
BEGIN
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'audit_auditentry' THEN
        IF purging AND OLD.redacted_at IS NULL AND NEW.redacted_at IS NOT NULL
           AND (to_jsonb(NEW) - ARRAY[{columns}]) = (to_jsonb(OLD) - ARRAY[{columns}]) THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit entries cannot be changed, except the redaction of their content'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF purging THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'audit entries are kept: only the retention purge removes them'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP FUNCTION IF EXISTS {s}.audit_keeper();
DROP FUNCTION IF EXISTS {s}.{redact};
DROP FUNCTION IF EXISTS {s}.{purge};
DROP TABLE IF EXISTS {s}.audit_purgefloor;
"""


def _sql(template: str, schema_editor) -> str:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = cursor.fetchone()[0]
    return (
        template.replace("{s}", connection.ops.quote_name(schema))
        .replace("{purge}", PURGE_SIGNATURE)
        .replace("{redact}", REDACT_SIGNATURE)
        .replace("{columns}", ", ".join(f"'{column}'" for column in REDACTION_COLUMNS))
        .replace("{redacted}", REDACTED)
        .replace("{{}}", "{}")
        .replace("{access_days}", str(int(settings.AUDIT_ACCESS_RETENTION_DAYS)))
        .replace("{change_days}", str(int(settings.AUDIT_CHANGE_RETENTION_DAYS)))
    )


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_sql(FORWARD, schema_editor), params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_sql(BACKWARD, schema_editor), params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_redaction_trigger")]
    operations = [migrations.RunPython(forward, backward)]
