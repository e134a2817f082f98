"""A notification row per recipient, written in the same transaction as the business change.

The database is the source of truth; live delivery (WebSocket) only rings the doorbell and is
added by the notifications issue on top of these rows."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class EventType(models.TextChoices):
    REQUEST_ROUTED = "request_routed", _("Request routed to my organisation")
    REQUEST_CLAIMED = "request_claimed", _("Request taken by a partner agent")
    REQUEST_ACCEPTED = "request_accepted", _("Request accepted")
    REQUEST_DECLINED = "request_declined", _("Request declined")
    REQUEST_UNROUTABLE = "request_unroutable", _("Request without provider")
    REQUEST_OVERDUE = "request_overdue", _("Response deadline passed")
    REQUEST_DELIVERED = "request_delivered", _("Delivery done")
    REQUEST_VALIDATED = "request_validated", _("Request validated")
    REQUEST_SENT_BACK = "request_sent_back", _("Request sent back")
    REQUEST_CANCELLED = "request_cancelled", _("Request cancelled")
    ENROLMENT_PROPOSED = "enrolment_proposed", _("Company proposed for enrolment")
    ENROLMENT_DECIDED = "enrolment_decided", _("Enrolment validated or refused")
    ESCALATION_RAISED = "escalation_raised", _("Case escalated to the animators")
    ESCALATION_DECIDED = "escalation_decided", _("Escalation decided")
    HANDOVER_PROPOSED = "handover_proposed", _("Referent handover proposed")
    HANDOVER_DECIDED = "handover_decided", _("Referent handover accepted or declined")


class Notification(models.Model):
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    event_type = models.CharField(_("event"), max_length=40, choices=EventType.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    case = models.ForeignKey(
        "casework.Case", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    service_request = models.ForeignKey(
        "workflows.ServiceRequest", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    text = models.TextField(_("text"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [models.Index(fields=["recipient", "id"], name="notification_recipient_idx")]

    def __str__(self):
        return f"{self.recipient} — {self.get_event_type_display()}"
