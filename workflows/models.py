"""Service requests: one viewflow process per request from a case into the toolbox.

`ServiceRequest` is a multi-table subclass of viewflow's `Process` with real foreign keys; the
tasks stay in viewflow's own `Task` table. `stage` mirrors where the request stands for lists and
boards; the flow (workflows.flows) is what moves it."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from viewflow.workflow.managers import TaskQuerySet
from viewflow.workflow.models import Process, Task

from casework.enums import ToolboxCategory


class RequestStatus(models.TextChoices):
    WAITING = "waiting", _("Waiting for a partner")
    CLAIMED = "claimed", _("Taken by a partner agent")
    UNROUTABLE = "unroutable", _("Waiting for the animators")
    ACCEPTED = "accepted", _("Accepted, in delivery")
    DELIVERED = "delivered", _("Delivered, to validate")
    CLOSED = "closed", _("Validated")
    CANCELLED = "cancelled", _("Cancelled")


OPEN_REQUEST_STATUSES = (
    RequestStatus.WAITING,
    RequestStatus.CLAIMED,
    RequestStatus.UNROUTABLE,
    RequestStatus.ACCEPTED,
    RequestStatus.DELIVERED,
)
# Stages where the request is held by its provider organisation (its load, its agents involved).
HELD_STATUSES = (
    RequestStatus.WAITING,
    RequestStatus.CLAIMED,
    RequestStatus.ACCEPTED,
    RequestStatus.DELIVERED,
)
# A provider organisation sees the case while its request is in one of these statuses, or once it
# accepted the request (then for good: it delivered part of the answer).
PROVIDER_STATUSES = (RequestStatus.WAITING, RequestStatus.CLAIMED)


class DeclineReason(models.TextChoices):
    OUT_OF_SCOPE = "out_of_scope", _("Outside our scope")
    NO_CAPACITY = "no_capacity", _("No capacity now")
    OUT_OF_TERRITORY = "out_of_territory", _("Outside our territory")
    ALREADY_SUPPORTED = "already_supported", _("Company already supported elsewhere")
    OTHER = "other", _("Other")


class ServiceRequest(Process):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    case = models.ForeignKey("casework.Case", on_delete=models.PROTECT, related_name="requests")
    need = models.ForeignKey("casework.Need", on_delete=models.PROTECT, related_name="requests")
    service = models.ForeignKey(
        "casework.ToolboxService", on_delete=models.PROTECT, null=True, blank=True, related_name="requests"
    )
    category = models.CharField(_("category"), max_length=20, choices=ToolboxCategory.choices)
    brief = models.TextField(_("brief"))
    desired_date = models.DateField(_("wanted by"), null=True, blank=True)
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField(_("opened at"), auto_now_add=True)

    provider = models.ForeignKey(
        "casework.Organisation",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="provided_requests",
    )
    stage = models.CharField(
        _("stage"), max_length=20, choices=RequestStatus.choices, default=RequestStatus.WAITING
    )
    routed_at = models.DateTimeField(_("routed at"), null=True, blank=True)
    deadline = models.DateTimeField(_("response deadline"), null=True, blank=True)
    overdue = models.BooleanField(_("overdue"), default=False)
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    result_candidates = models.PositiveIntegerField(_("candidates proposed"), null=True, blank=True)
    result_hires = models.PositiveIntegerField(_("hires"), null=True, blank=True)
    result_trainings = models.PositiveIntegerField(_("people entering training"), null=True, blank=True)
    result_text = models.TextField(_("result"), blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    validated_at = models.DateTimeField(_("validated at"), null=True, blank=True)
    cancel_reason = models.TextField(_("cancellation reason"), blank=True)
    # Identifier of the form that opened it: the same form posted twice opens one request.
    submission_id = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        verbose_name = _("service request")
        verbose_name_plural = _("service requests")
        indexes = [
            models.Index(fields=["provider", "stage"], name="request_provider_stage_idx"),
            models.Index(fields=["case", "stage"], name="request_case_stage_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(stage__in=["waiting", "claimed", "accepted", "delivered"])
                | Q(provider__isnull=False),
                name="request_with_provider",
            )
        ]

    def __str__(self):
        return f"{self.get_category_display()} — {self.case.company}"

    @property
    def category_label(self):
        """The category's label, lazy: rendered in the language of whoever reads it."""
        return ToolboxCategory(self.category).label

    @property
    def is_open(self) -> bool:
        return self.stage in OPEN_REQUEST_STATUSES


class RequestDecline(models.Model):
    """An organisation declined a request: routing skips it from then on."""

    request = models.ForeignKey(ServiceRequest, on_delete=models.CASCADE, related_name="declines")
    organisation = models.ForeignKey("casework.Organisation", on_delete=models.PROTECT, related_name="+")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(_("reason"), max_length=20, choices=DeclineReason.choices)
    reason_text = models.TextField(_("details"), blank=True)
    suggested_organisation = models.ForeignKey(
        "casework.Organisation", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("decline")
        verbose_name_plural = _("declines")
        constraints = [
            models.CheckConstraint(
                condition=~Q(reason="other") | ~Q(reason_text=""), name="decline_other_has_text"
            ),
        ]

    def __str__(self):
        return f"{self.organisation} — {self.get_reason_display()}"


class EventKind(models.TextChoices):
    OPENED = "opened", _("Request opened")
    ROUTED = "routed", _("Routed to a partner")
    UNROUTABLE = "unroutable", _("No partner left: sent to the animators")
    CLAIMED = "claimed", _("Taken by an agent")
    RELEASED = "released", _("Released by the agent")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")
    OVERDUE = "overdue", _("Response deadline passed")
    ASSIGNED = "assigned", _("Partner chosen by the animators")
    INTERVENTION_PLANNED = "intervention_planned", _("Intervention planned")
    INTERVENTION_DONE = "intervention_done", _("Intervention done")
    INTERVENTION_CANCELLED = "intervention_cancelled", _("Intervention cancelled")
    DELIVERED = "delivered", _("Delivery declared done")
    VALIDATED = "validated", _("Validated by the referent")
    SENT_BACK = "sent_back", _("Sent back by the referent")
    CANCELLED = "cancelled", _("Cancelled by the referent")


class RequestEvent(models.Model):
    """The timeline of a request: who did what and when, written with each step."""

    request = models.ForeignKey(ServiceRequest, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(_("event"), max_length=30, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    organisation = models.ForeignKey(
        "casework.Organisation", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    text = models.TextField(_("details"), blank=True)
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("request event")
        verbose_name_plural = _("request events")

    def __str__(self):
        return f"{self.request_id} — {self.get_kind_display()}"


class EscalationDecision(models.TextChoices):
    MOBILISE = "mobilise", _("Mobilise another partner")
    REASSIGN = "reassign", _("Reassign the referent")
    CLOSE = "close", _("Close the case")
    NOTE = "note", _("Note only")


class Escalation(models.Model):
    """A referent asks the site's animators to unblock a case; their decision is recorded on it."""

    case = models.ForeignKey("casework.Case", on_delete=models.CASCADE, related_name="escalations")
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    raised_at = models.DateTimeField(_("raised at"), auto_now_add=True)
    text = models.TextField(_("what blocks"))
    decision = models.CharField(_("decision"), max_length=20, choices=EscalationDecision.choices, blank=True)
    decision_text = models.TextField(_("decision details"), blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    service_request = models.ForeignKey(
        ServiceRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-raised_at", "-id"]
        verbose_name = _("escalation")
        verbose_name_plural = _("escalations")
        constraints = [
            models.UniqueConstraint(
                fields=["case"], condition=Q(decided_at__isnull=True), name="one_open_escalation_per_case"
            ),
            models.CheckConstraint(
                condition=Q(decided_at__isnull=True) | ~Q(decision=""), name="decided_escalation_has_decision"
            ),
        ]

    def __str__(self):
        return f"{self.case} — {self.raised_at:%d/%m/%Y}"

    @property
    def is_open(self) -> bool:
        return self.decided_at is None


class RequestTaskManager(models.Manager.from_queryset(TaskQuerySet)):
    def get_queryset(self):
        return super().get_queryset().select_related("process__servicerequest")


class RequestTask(Task):
    """A task of the service request flow: viewflow's own `Task` table and rows (a proxy), read
    with its request. viewflow reads the tasks of a flow through `ServiceRequestFlow.task_class`'s
    default manager (the timer boundary cancelled when a review is answered, the timers, the
    cancellation of a request) and then reaches the request through `task.process.coerced`: joined
    here, that is one query instead of three."""

    objects = RequestTaskManager()

    class Meta:
        proxy = True
        # viewflow reads these tasks to act on each of them, never in an order (it orders
        # explicitly where it needs one): without `Task`'s default ordering on `-created`, the
        # ORDER BY of every such read — a third of the time Django spends compiling the timer
        # cancelled at each answer (bench/write_path) — is not built at all.
        ordering = ()
