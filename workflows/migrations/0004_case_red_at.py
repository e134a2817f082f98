"""Recompute the board figures of existing cases: the nearest deadline now also counts an overdue
request's (passed) deadline, and `red_at` (casework 0008) orders the board's cards."""

from datetime import timedelta

from django.db import migrations
from django.db.models import DateTimeField, ExpressionWrapper, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Least

OPEN = ["waiting", "claimed", "unroutable", "accepted", "delivered"]
PROVIDER = ["waiting", "claimed"]
IDLE = timedelta(days=14)


def fill(apps, schema_editor):
    Case = apps.get_model("casework", "Case")
    ServiceRequest = apps.get_model("workflows", "ServiceRequest")
    deadlines = ServiceRequest.objects.filter(
        Q(stage__in=PROVIDER) | Q(stage__in=OPEN, overdue=True), case_id=OuterRef("pk"), deadline__isnull=False
    )
    Case.objects.update(next_deadline=Subquery(deadlines.order_by("deadline").values("deadline")[:1]))
    idle_at = ExpressionWrapper(F("last_activity_at") + IDLE, output_field=DateTimeField())
    Case.objects.update(red_at=Coalesce(Least(F("next_deadline"), idle_at), idle_at))


class Migration(migrations.Migration):
    dependencies = [("workflows", "0003_case_board_summary"), ("casework", "0008_case_red_at")]
    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
