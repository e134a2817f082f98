"""The accept path's SQL, pinned: a partner agent accepting a request they claimed is one
transaction of a fixed number of statements (BEGIN and COMMIT included), as in production — not
nested in a test transaction. `make bench` measures the same path on PostgreSQL (key
"write_path", docs/performance.md).

What the count covers, in order: the change chain's lock, which returns the chain's head in the
same statement (PostgreSQL: its row of `audit_chainhead`; SQLite reads the head row before the
entry instead, BEGIN IMMEDIATE serialising the writers); the task read under the flow lock it
takes, with its request, case, company, referent and provider and the referent's channel for the
notification (one query, which is also auditlog's "before" of the request's update:
audit.snapshots); the audit entry; the request's update; the timeline row with the case's board
figures and activity stamp (one statement on PostgreSQL, two on SQLite); the referent's
notification; viewflow closing the review (whose answer chooses the next node: no gateway task),
cancelling its deadline timer (one UPDATE) and creating the delivery task and its link."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from audit import chain
from audit.models import AuditEntry
from casework import rules
from casework.models import Case, User
from notifications.models import Notification
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import board, services
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.models import EventKind, RequestStatus, ServiceRequest

# Lower it when the path gets lighter; never raise it without saying why (docs/performance.md).
# Issue 16 §4: 16 and 17 before, at most 12 on PostgreSQL.
ACCEPT_QUERIES = {"sqlite": 13, "postgresql": 12}


@pytest.fixture
def claimed(site, referent):
    """A review task claimed by an agent of the provider, and the agent as the view has them
    (a fresh instance whose roles were read by the page's own queries)."""
    case = CaseFactory(site=site, referent=referent, diagnosed=True)
    need = NeedFactory(case=case, created_by=referent, category="mobility")
    provider = OrganisationFactory(name="Plateforme mobilité")
    service = ToolboxServiceFactory(
        category="mobility", provider=provider, territories=[site.territory], response_time_days=3
    )
    agent = UserFactory(first_name="Yann", last_name="Bodin")
    MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
    request = services.request_open(actor=referent, case=case, need=need, service=service, brief="Mobilité")
    task = Task.objects.get(process_id=request.pk, flow_task=FLOW.review, status=STATUS.NEW)
    services.task_claim(actor=agent, task_id=task.pk)
    actor = User.objects.get(pk=agent.pk)
    rules.user_roles(actor)
    return {"task": task, "request": request, "case": case, "actor": actor, "referent": referent}


@pytest.mark.django_db(transaction=True)
def test_accepting_a_request_takes_a_fixed_number_of_statements(claimed):
    entries_before = AuditEntry.objects.count()
    with CaptureQueriesContext(connection) as queries:
        services.request_accept(actor=claimed["actor"], task_id=claimed["task"].pk)
    statements = [query["sql"] for query in queries.captured_queries]
    expected = ACCEPT_QUERIES[connection.vendor]
    assert len(statements) == expected, (
        f"{len(statements)} statements on {connection.vendor}, pinned at {expected}:\n"
        + "\n".join(f"{i:2} {sql[:150]}" for i, sql in enumerate(statements, 1))
    )
    assert statements[0].startswith("BEGIN") and statements[-1] == "COMMIT"

    # Nothing of the step was lost on the way.
    request = ServiceRequest.objects.get(pk=claimed["request"].pk)
    assert request.stage == RequestStatus.ACCEPTED and request.accepted_by_id == claimed["actor"].pk
    assert list(request.events.values_list("kind", flat=True))[-1] == EventKind.ACCEPTED
    assert Task.objects.filter(process_id=request.pk, flow_task=FLOW.deliver, status=STATUS.ASSIGNED).exists()
    assert Notification.objects.filter(
        recipient=claimed["referent"], event_type="request_accepted", service_request=request
    ).exists()
    entry = AuditEntry.objects.order_by("-pk").first()
    assert AuditEntry.objects.count() == entries_before + 1
    assert entry.object_pk == str(request.pk) and entry.actor_id == claimed["actor"].pk
    assert set(entry.changes) == {"stage", "accepted_at", "accepted_by"}
    case = Case.objects.get(pk=claimed["case"].pk)
    assert case.last_activity_at == request.accepted_at and case.open_requests == 1
    assert chain.verify() == []


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_the_steps_statements_become_prepared(claimed):
    """PostgreSQL binds the parameters itself and keeps a statement run five times on a connection
    prepared (config/settings.py): the acceptance's board refresh is then neither parsed nor
    planned again (docs/performance.md)."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are a PostgreSQL setting")
    assert connection.features.uses_server_side_binding
    case = claimed["case"]
    for _ in range(6):
        board.refresh_case(case.pk, case.site_id, case.public_id, activity_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(sql.startswith('UPDATE "casework_case" SET "open_requests"') for sql in prepared), prepared


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("channel", ["off", "immediate", None])
def test_the_referents_channel_read_with_the_task_is_the_one_honoured(claimed, channel):
    """The step reads the referent's channel for its notification with its task (no query of its
    own): off, nothing; immediate, the notification and its e-mail; no choice, the default."""
    from notifications.models import NotificationPreference, OutboxEmail

    referent = claimed["referent"]
    if channel is not None:
        NotificationPreference.objects.create(user=referent, event_type="request_accepted", channel=channel)
    emails = OutboxEmail.objects.filter(recipient=referent).count()
    with CaptureQueriesContext(connection) as queries:
        services.request_accept(actor=claimed["actor"], task_id=claimed["task"].pk)
    assert not any("notifications_notificationpreference" in q["sql"].split(" FROM ", 1)[0] for q in queries)
    if channel is None:
        assert len(queries) == ACCEPT_QUERIES[connection.vendor]
    told = Notification.objects.filter(recipient=referent, event_type="request_accepted").exists()
    assert told is (channel != "off")
    assert OutboxEmail.objects.filter(recipient=referent).count() == emails + (channel == "immediate")


@pytest.mark.django_db(transaction=True)
def test_a_steps_timeline_row_and_its_cases_figures_are_one_statement_on_postgresql(claimed):
    """`events.record`: the row and the refresh of the case's board figures in one WITH on
    PostgreSQL, the ORM's save then the UPDATE elsewhere, and the ORM's save whenever something
    listens to the row's saves (a signal is never skipped)."""
    from django.db.models.signals import post_save

    from workflows import events
    from workflows.models import RequestEvent

    request = ServiceRequest.objects.select_related("case").get(pk=claimed["request"].pk)
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        event = events.record(request, EventKind.CLAIMED, actor=claimed["actor"], activity_at=now)
    assert len(queries) == (1 if connection.vendor == "postgresql" else 2)
    assert RequestEvent.objects.get(pk=event.pk).kind == EventKind.CLAIMED and not event._state.adding
    assert Case.objects.get(pk=request.case_id).last_activity_at == now

    heard = []

    def listener(sender, instance, created, **kwargs):
        heard.append(instance.pk)

    post_save.connect(listener, sender=RequestEvent)
    try:
        with CaptureQueriesContext(connection) as queries:
            event = events.record(request, EventKind.CLAIMED, actor=claimed["actor"])
    finally:
        post_save.disconnect(listener, sender=RequestEvent)
    assert heard == [event.pk] and len(queries) == 2
