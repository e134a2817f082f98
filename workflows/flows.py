"""The service request flow (django-viewflow 2.4, open-source nodes only).

    start ─► route ─► routed? ──yes──► review ──accepted?──yes──► deliver ─► validate ─► validated? ─yes─► end
                         │             │   ╰──declined──► route                      ╰──no──► deliver
                         no            ╰─(deadline passed)─► overdue ─► dispatch
                         ╰──────────────────────────────────────────────► dispatch ─► review

Human tasks are completed only through `workflows.services`, which check the acting user's rights
on the server: viewflow's own permissions are queries, not gates, and its views are not mounted.
Each human node still requires a permission nobody is granted, so that nothing of viewflow's own
could hand a task to "anyone"."""

from contextlib import contextmanager

from django.db import DatabaseError, transaction
from django.db.models import QuerySet
from django.http import HttpResponseNotFound
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from viewflow import this
from viewflow.workflow import act, flow, lock
from viewflow.workflow.activation import Activation
from viewflow.workflow.base import Edge
from viewflow.workflow.exceptions import FlowLockFailed
from viewflow.workflow.flow import nodes as flow_nodes
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from audit.chain import holds_lock, write_lock
from workflows import events, routing
from workflows.business_days import add_business_days
from workflows.compiled import CompiledRead, CompiledUpdate
from workflows.models import EventKind, RequestStatus, RequestTask, ServiceRequest

NOBODY = "workflows.manage_servicerequest"  # no user holds it: tasks move through our services only


def not_mounted(request, **kwargs):  # pragma: no cover - viewflow's views are not routed
    return HttpResponseNotFound()


class ChainFirstLock(lock.SelectForUpdateLock):
    """viewflow's row lock on the process, taken after the audit chain's write lock.

    Inside a service (`audited_atomic`: the chain's lock is already held) the row lock joins the
    service's transaction without a savepoint of its own: whatever fails under it, a lock error
    included, fails the whole service, which rolls back. The same `SELECT … FOR UPDATE`, waiting,
    tried once (`attempts=1`, as configured below: a failed statement aborts the transaction, there
    is nothing to retry in). Elsewhere (the timer dispatcher) it is viewflow's lock, in its own
    transaction or savepoint, after the chain's lock."""

    @contextmanager
    def __call__(self, flow_class, process_pk):
        if holds_lock():
            with transaction.atomic(savepoint=False):
                try:
                    rows = flow_class.process_class._default_manager.filter(pk=process_pk)
                    rows.select_for_update(nowait=self.nowait).exists()
                except DatabaseError:
                    raise FlowLockFailed(f"Lock failed for {flow_class}") from None
                yield
            return
        with transaction.atomic():
            write_lock()
            with super().__call__(flow_class, process_pk):
                yield


# What a step locks when it reads its task (`locked_task`): the task, its process and its request.
STEP_LOCKED = ("self", "process", "process__servicerequest")


def step_task_read(task: int, *related: str) -> QuerySet:
    """The queryset of `locked_task`: the task `task` of a request with `related` (select_related
    paths), locked with its process and its request by the flow's own lock (`lock_impl`: waiting
    unless it says NOWAIT). The request is joined, not outer-joined (a row lock cannot be taken on
    the nullable side of an outer join): a task of another flow is not found."""
    return (
        Task.objects.select_related("process__servicerequest", *related)
        .filter(pk=task, process__servicerequest__isnull=False)
        .order_by()
        .select_for_update(nowait=ServiceRequestFlow.lock_impl.nowait, of=STEP_LOCKED)
    )


def locked_task(read: CompiledRead, task_id: int):
    """Inside a service: the task `task_id` with its request, read under `ChainFirstLock`'s row
    lock on the request, taken by that same statement — a compiled `step_task_read` — instead of
    locking the request first and reading the task after it (one round trip less). The same
    waiting `SELECT … FOR UPDATE`, joining the service's transaction, a lock error raised as
    `FlowLockFailed`; the task and its process are locked with the request, so that all three are
    read as they are once the lock is granted (READ COMMITTED reads the newest version of the
    rows a statement locks). The case, its company and referent, and the provider are read as of
    the statement's start, after the service took the audit chain's lock: an audited change of
    those rows commits holding that lock (a service takes it first, an entry written outside one
    takes it at its INSERT), so every such change is either already committed or waits for this
    service's end. None when there is no such task.
    viewflow's `lock_scope` is not entered: it only defers `after_lock_released` callbacks, which
    only subprocesses queue, and this flow has none."""
    if not holds_lock():
        raise RuntimeError("locked_task runs inside a service (audited_atomic)")
    try:
        found = read(task=task_id)
    except DatabaseError:
        raise FlowLockFailed(f"Lock failed for the request of task {task_id}") from None
    return found[0] if found else None


class ResponseDeadline(flow_nodes.TimerBoundary):
    """viewflow's interrupting timer boundary (what `.OnTimeout(delay, then)` builds), declared as a
    node of its own. When its host task ends, viewflow reads the armed timer of this node (armed by
    that host task in that process, not ended yet) with its request, and cancels it through the
    timer's activation: NEW or SCHEDULED → CANCELED, `finished` set to now, the task saved. Here
    the same cancellation is one UPDATE of those timers, compiled once per database
    (`workflows.compiled`): the read and the save were two statements of a partner's acceptance
    (bench/write_path). Nothing listens to that save (viewflow's cancel sends no signal, the task
    is not audited: audit/apps.py), and a timer already started by the dispatcher is left to it, as
    the activation's transition would (its source is NEW or SCHEDULED only)."""

    CANCELLABLE = (STATUS.NEW, STATUS.SCHEDULED)  # the sources of TimerActivation.cancel

    def _ready(self):
        super()._ready()
        # Built on the flow's own node (flow classes copy their nodes before readying them).
        self._cancel_armed = CompiledUpdate(
            lambda host, process, at: (
                self.flow_class.task_class._default_manager.filter(
                    flow_task=self, process_id=process, previous=host, status__in=self.CANCELLABLE
                ),
                {"status": STATUS.CANCELED, "finished": at},
            ),
            ids=("host", "process"),
            moments=("at",),
        )

    def _on_host_finished(self, **signal_kwargs):
        host_task = signal_kwargs["task"]
        if host_task.flow_task != self._attached_to:
            return
        self._cancel_armed(host=host_task.pk, process=host_task.process_id, at=timezone.now())


class AnswerActivation(flow.View.activation_class):
    """The task's answer chooses the next node, as an exclusive gateway right after it would."""

    @Activation.status.super()
    def create_next(self):
        node = self.flow_task._on_true if self.flow_task._condition(self) else self.flow_task._on_false
        yield node._create(self, self.task.token)


class Answer(flow.View):
    """A human task whose answer chooses what comes next: viewflow's `View` followed by an `If`
    gateway, in one node — `.If(condition).Then(node).Else(node)` instead of `.Next(gateway)`.
    The gateway's own task (a row, its link, a savepoint, its completion) was a sixth of a
    partner's acceptance (bench/write_path); the graph keeps both branches, labelled as the
    gateway's."""

    activation_class = AnswerActivation

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._condition = self._on_true = self._on_false = None

    def If(self, condition):
        self._condition = condition
        return self

    def Then(self, node):
        self._on_true = node
        return self

    def Else(self, node):
        self._on_false = node
        return self

    def _resolve(self, instance):
        super()._resolve(instance)
        self._condition = this.resolve(instance, self._condition)
        self._on_true = this.resolve(instance, self._on_true)
        self._on_false = this.resolve(instance, self._on_false)

    def _outgoing(self):
        yield Edge(src=self, dst=self._on_true, edge_class="cond_true", label="yes")
        yield Edge(src=self, dst=self._on_false, edge_class="cond_false", label="no")


class ServiceRequestFlow(flow.Flow):
    """A request of a case into the shared toolbox, routed to a partner organisation."""

    process_class = ServiceRequest
    task_class = RequestTask  # viewflow's Task, read with its request (workflows.models)
    # Row lock on the request, WAITING for it (FOR UPDATE without NOWAIT): contenders queue for a
    # few milliseconds, then read the new state (who took the task). viewflow's default NOWAIT
    # retry loop catches the lock error inside its savepoint and then releases that savepoint in
    # an aborted transaction: under our @transaction.atomic services every loser of a concurrent
    # claim got an InternalError on PostgreSQL (measured: 200/200 trials). attempts=1: any other
    # lock error (deadlock, lock_timeout) is raised as FlowLockFailed, which the services turn into
    # a French message. On SQLite row locks are no-ops; IMMEDIATE transactions serialise writers.
    # The audit chain's lock comes first (ChainFirstLock): the timer dispatcher enters a flow
    # without our services, and the lock order must be the same everywhere (audit.chain.write_lock).
    lock_impl = ChainFirstLock(nowait=False, attempts=1)

    start = flow.StartHandle(this.start_request).Next(this.route)

    route = flow.Function(this.route_request).Next(this.check_routed)

    check_routed = (
        flow.If(lambda activation: activation.process.provider_id is not None)
        .Then(this.review)
        .Else(this.dispatch)
    )

    # Accepted (the accepting agent is recorded) → delivery; declined → routed to the next partner.
    review = (
        Answer(not_mounted)
        .Annotation(title=_("Accept or decline the request"))
        .Permission(NOBODY)
        .If(act.process.accepted_by_id)
        .Then(this.deliver)
        .Else(this.route)
    )
    # `.OnTimeout(this.response_deadline, this.overdue)` on `review`, declared under the name viewflow
    # gives it (the tasks of running requests keep their node).
    review__timeout = ResponseDeadline(this.review, delay=this.response_deadline).Next(this.overdue)

    overdue = flow.Function(this.mark_overdue).Next(this.dispatch)

    dispatch = (
        flow.View(not_mounted)
        .Annotation(title=_("Choose a partner for the request"))
        .Permission(NOBODY)
        .Next(this.review)
    )

    deliver = (
        flow.View(not_mounted)
        .Annotation(title=_("Deliver the request"))
        .Assign(lambda activation: activation.process.accepted_by)
        .Next(this.validate)
    )

    validate = (
        flow.View(not_mounted)
        .Annotation(title=_("Validate the delivery"))
        .Assign(lambda activation: activation.process.case.referent)
        .Next(this.check_validated)
    )

    check_validated = flow.If(act.process.validated_at).Then(this.end).Else(this.deliver)

    end = flow.End()

    # --- callbacks -------------------------------------------------------------------------

    def start_request(self, activation, request: ServiceRequest, opened_text=""):
        """`request` is an unsaved ServiceRequest built by services.request_open."""
        activation.process = request
        request.stage = RequestStatus.UNROUTABLE  # until `route` runs, in this same transaction
        request.flow_class = self.__class__
        request.save()
        activation.task.process = request
        # Recorded here so that "opened" precedes "routed" on the timeline (route runs next).
        events.record(request, EventKind.OPENED, actor=request.opened_by, text=opened_text)
        return request

    def route_request(self, activation, **kwargs):
        request = activation.process
        preferred = request.data.pop("preferred_provider", None) if request.data else None
        provider = routing.choose_provider(request, preferred_id=preferred)
        now = timezone.now()
        if provider is None:
            request.provider = None
            request.stage = RequestStatus.UNROUTABLE
            request.deadline = None
            request.save()
            events.record(request, EventKind.UNROUTABLE)
            events.tell(
                request,
                "request_unroutable",
                events.site_animators(request.case),
                _("No partner can take the %(category)s request of %(company)s: choose one."),
                category=request.category_label,
            )
            return
        self.route_to(request, provider, now)

    @staticmethod
    def route_to(request, provider, now, actor=None):
        request.provider = provider
        request.stage = RequestStatus.WAITING
        request.routed_at = now
        request.deadline = add_business_days(now, routing.response_days(request, provider))
        request.save()
        events.record(request, EventKind.ROUTED, actor=actor, organisation=provider)
        events.tell(
            request,
            "request_routed",
            events.provider_agents(provider),
            _("New %(category)s request for %(company)s in your organisation's queue."),
            actor=actor,
            category=request.category_label,
        )

    def response_deadline(self, activation):
        return activation.process.deadline

    def mark_overdue(self, activation, **kwargs):
        request = activation.process
        request.overdue = True
        request.stage = RequestStatus.UNROUTABLE
        request.save(update_fields=["overdue", "stage"])
        events.record(request, EventKind.OVERDUE, organisation=request.provider)
        events.tell(
            request,
            "request_overdue",
            [
                request.case.referent,
                *events.provider_agents(request.provider),
                *events.site_animators(request.case),
            ],
            _(
                "The %(category)s request for %(company)s was not accepted in time: "
                "the animators will reassign it."
            ),
            category=request.category_label,
        )
