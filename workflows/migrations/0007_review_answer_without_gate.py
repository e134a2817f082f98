"""The review chooses its next node itself (`workflows.flows.Answer`): the `check_answer` gateway
is gone from the flow. Its stored tasks (each done in the transaction of the answer that created
it) are removed, and the task that followed each of them is linked to the review it came from,
as the flow now links them — so every stored task still names a node of the flow."""

from django.db import migrations

GATE = "workflows/flows.ServiceRequestFlow.check_answer"


def remove_answer_gates(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        # next --previous--> gate --previous--> review  becomes  next --previous--> review
        cursor.execute(
            "INSERT INTO viewflow_task_previous (from_task_id, to_task_id)"
            " SELECT after_gate.from_task_id, before_gate.to_task_id"
            " FROM viewflow_task_previous after_gate"
            " JOIN viewflow_task_previous before_gate ON before_gate.from_task_id = after_gate.to_task_id"
            " JOIN viewflow_task gate ON gate.id = after_gate.to_task_id"
            " WHERE gate.flow_task = %s AND NOT EXISTS ("
            "   SELECT 1 FROM viewflow_task_previous known"
            "   WHERE known.from_task_id = after_gate.from_task_id AND known.to_task_id = before_gate.to_task_id)",
            [GATE],
        )
        gates = "SELECT id FROM viewflow_task WHERE flow_task = %s"
        cursor.execute(
            f"DELETE FROM viewflow_task_previous WHERE from_task_id IN ({gates}) OR to_task_id IN ({gates})",
            [GATE, GATE],
        )
        cursor.execute("DELETE FROM viewflow_task WHERE flow_task = %s", [GATE])


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0006_request_task_unordered"),
        ("viewflow", "0015_task_scheduled"),
    ]

    operations = [migrations.RunPython(remove_answer_gates, migrations.RunPython.noop)]
