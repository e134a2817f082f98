"""On PostgreSQL, the application cannot change or delete audit entries, nor move a chain's anchor:
a trigger refuses UPDATE and DELETE, except a DELETE (or an anchor change) made by the retention
purge, which sets `audit.purge` to 'on' for its own transaction (SET LOCAL). TRUNCATE is left to
the table's owner (test databases are emptied that way); in production the application's database
role should not own the tables (docs/gdpr.md)."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION audit_refuse_changes() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'audit_auditentry' THEN
        RAISE EXCEPTION 'audit entries cannot be changed' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF coalesce(current_setting('audit.purge', true), '') = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'audit entries are kept: only the retention purge removes them'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_entry_immutable BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_changes();
CREATE TRIGGER audit_anchor_guarded BEFORE UPDATE OR DELETE ON audit_chainanchor
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_changes();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_anchor_guarded ON audit_chainanchor;
DROP TRIGGER IF EXISTS audit_entry_immutable ON audit_auditentry;
DROP FUNCTION IF EXISTS audit_refuse_changes();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
