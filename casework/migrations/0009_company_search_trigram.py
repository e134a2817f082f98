"""Company search by name (the case list's search box) from a trigram index on PostgreSQL:
`UPPER(name::text) LIKE UPPER('%…%')` (what `name__icontains` writes) reads a GIN index instead of
every company. pg_trgm ships with PostgreSQL and is a trusted extension (PostgreSQL 13+): the
database's owner may create it.

The SIRET needs none: its unique constraint already comes with a `varchar_pattern_ops` index
(`casework_company_siret_…_like`, which Django adds to every indexed CharField on PostgreSQL), the
exact range scan for `siret__startswith`. What made the search by SIRET read every company was the
name's side of the search's OR: without an index for it, the OR could not be answered from
indexes at all.

PostgreSQL only, and outside the models' state: SQLite (the embedded mode) has no such index and
scans its few thousand companies; `makemigrations` sees nothing to change either way. Written out
in SQL: Django's OpClass needs django.contrib.postgres installed to be placed after the
expression's parentheses."""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

FORWARD = """
CREATE INDEX IF NOT EXISTS company_name_trgm_idx ON casework_company USING gin ((UPPER(name)) gin_trgm_ops);
"""
BACKWARD = """
DROP INDEX IF EXISTS company_name_trgm_idx;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("casework", "0008_case_red_at"),
    ]

    operations = [
        TrigramExtension(),
        migrations.RunPython(forward, backward, elidable=False),
    ]
