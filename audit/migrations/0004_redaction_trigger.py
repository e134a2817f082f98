"""On PostgreSQL, the trigger of migration 0002 now lets one UPDATE of an audit entry through: the
redaction made by the anonymisation of a case (audit.chain.redact), under the purge switch
(`SET LOCAL audit.purge = 'on'`), of an entry not redacted yet, changing only the redactable
columns, `redacted_at` (set) and `redaction_hash`. Any other change of an entry is refused, with
or without the switch; DELETE and anchor changes are still allowed under the switch only."""

from django.db import migrations

# Columns a redaction may change; every other column of the row must stay as it is.
REDACTION_COLUMNS = (
    "changes",
    "changes_text",
    "object_repr",
    "serialized_data",
    "additional_data",
    "redacted_at",
    "redaction_hash",
)

FORWARD = """
CREATE OR REPLACE FUNCTION audit_refuse_changes() RETURNS trigger AS $$
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
""".replace("{columns}", ", ".join(f"'{column}'" for column in REDACTION_COLUMNS))

# The function of migration 0002.
BACKWARD = """
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
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_redaction_and_anchor_hash")]
    operations = [migrations.RunPython(forward, backward)]
