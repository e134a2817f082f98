"""Fill the status board's summary columns of existing cases (casework 0007) from their requests;
from then on workflows.board.refresh_case keeps them at every step."""

from django.db import migrations
from django.db.models import Count, Min, Q

OPEN = ["waiting", "claimed", "unroutable", "accepted", "delivered"]
PROVIDER = ["waiting", "claimed"]


def fill(apps, schema_editor):
    Case = apps.get_model("casework", "Case")
    ServiceRequest = apps.get_model("workflows", "ServiceRequest")
    summaries = ServiceRequest.objects.values("case_id").annotate(
        open=Count("pk", filter=Q(stage__in=OPEN)),
        overdue=Count("pk", filter=Q(stage__in=OPEN, overdue=True)),
        deadline=Min("deadline", filter=Q(stage__in=PROVIDER)),
    )
    for row in summaries.iterator():
        Case.objects.filter(pk=row["case_id"]).update(
            open_requests=row["open"], overdue_requests=row["overdue"], next_deadline=row["deadline"]
        )


class Migration(migrations.Migration):
    dependencies = [("workflows", "0002_escalation"), ("casework", "0007_case_board_summary")]
    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
