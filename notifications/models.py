"""A notification row per recipient, written in the same transaction as the business change.

The database is the source of truth; live delivery (WebSocket) only rings the doorbell
(notifications.delivery) and the socket reads these rows."""

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
    INTERVENTION_DUE = "intervention_due", _("Intervention planned for tomorrow")
    CASE_MENTION = "case_mention", _("Mentioned in a case comment")
    CASE_COMMENT = "case_comment", _("New comment on my case")
    REVIEW_ACTION = "review_action", _("Action item for me from a weekly review")


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
    # Set when the notification went out by e-mail (at once or in a digest): never e-mailed twice.
    emailed_at = models.DateTimeField(_("e-mailed at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [models.Index(fields=["recipient", "id"], name="notification_recipient_idx")]

    def __str__(self):
        return f"{self.recipient} — {self.get_event_type_display()}"


class Channel(models.TextChoices):
    IN_APP = "in_app", _("In the application only")
    IMMEDIATE = "immediate", _("In the application and by e-mail at once")
    DIGEST = "digest", _("In the application and in the daily e-mail digest")
    OFF = "off", _("Off")


# E-mail at once for what needs acting now; everything else in the daily digest.
DEFAULT_CHANNELS = {
    EventType.REQUEST_ROUTED: Channel.IMMEDIATE,
    EventType.REQUEST_OVERDUE: Channel.IMMEDIATE,
    EventType.ESCALATION_RAISED: Channel.IMMEDIATE,
    EventType.HANDOVER_PROPOSED: Channel.IMMEDIATE,
    EventType.HANDOVER_DECIDED: Channel.IMMEDIATE,
    EventType.INTERVENTION_DUE: Channel.IMMEDIATE,
    EventType.CASE_MENTION: Channel.IMMEDIATE,
    EventType.REVIEW_ACTION: Channel.IMMEDIATE,
}


def default_channel(event_type: str) -> str:
    return DEFAULT_CHANNELS.get(event_type, Channel.DIGEST)


class NotificationPreference(models.Model):
    """A user's choice for one event type; without a row, `default_channel` applies."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    event_type = models.CharField(_("event"), max_length=40, choices=EventType.choices)
    channel = models.CharField(_("how"), max_length=20, choices=Channel.choices)

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")
        constraints = [
            models.UniqueConstraint(fields=["user", "event_type"], name="one_preference_per_event_type")
        ]

    def __str__(self):
        return f"{self.user} — {self.event_type}: {self.channel}"


class OutboxEmail(models.Model):
    """An e-mail to send, written in the business transaction and sent after it by the worker
    loop: retried on failure, marked sent once (a claim prevents two workers sending it)."""

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    to = models.EmailField(_("to"))
    subject = models.CharField(_("subject"), max_length=250)
    body_text = models.TextField(_("text"))
    body_html = models.TextField(_("HTML"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    is_digest = models.BooleanField(_("daily digest"), default=False)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), auto_now_add=True, db_index=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    # Set (with the attempt counted) just before each send: a row whose attempt started but that
    # was never marked sent nor failed was interrupted mid-send (possibly delivered).
    attempt_started_at = models.DateTimeField(_("attempt started at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True, db_index=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("outgoing e-mail")
        verbose_name_plural = _("outgoing e-mails")

    def __str__(self):
        return f"{self.to} — {self.subject}"
