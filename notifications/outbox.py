"""E-mails: written in the business transaction (immediate ones) or by the daily digest, sent
afterwards by the worker loop. Retried with back-off on failure (at most MAX_ATTEMPTS); a claim on
the row prevents two workers from sending the same e-mail, and a sent e-mail is never sent again.
At-least-once at the edge, with a stable Message-ID (`message_id`, the same on every retry) so that
receivers can de-duplicate: if the process dies between the server's acceptance and marking the row
sent, the e-mail goes out again once its claim expires (OUTBOX_CLAIM_TIMEOUT, taken per message just
before its send). Every SMTP operation waits at most EMAIL_TIMEOUT, and a server that times out or
drops the connection ends the pass. Run one worker loop (digests are not locked)."""

import logging
import smtplib
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone, translation

from notifications.models import Channel, Notification, NotificationPreference, OutboxEmail, default_channel

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 10  # then the e-mail stays unsent with its last error, for the operator to see
MAX_BACKOFF = timedelta(hours=6)
DIGEST_SPACING = timedelta(hours=20)


def channels_for(users, event_type: str) -> dict[int, str]:
    """Effective channel of `event_type` for each user (their preference, else the default). A
    channel already read in the running transaction with the user (`known_channel`) is not read
    again: no query when every user's is known."""
    found, unknown = {}, []
    for user in users:
        known = user.__dict__.get(KNOWN_CHANNELS, {})
        if event_type in known:
            found[user.pk] = known[event_type]
        else:
            unknown.append(user.pk)
    if unknown:
        chosen = dict(
            NotificationPreference.objects.filter(user__in=unknown, event_type=event_type).values_list(
                "user_id", "channel"
            )
        )
        found.update({pk: chosen.get(pk, default_channel(event_type)) for pk in unknown})
    return found


# Attribute of a User instance: {event type: effective channel}, read with that instance.
KNOWN_CHANNELS = "_notification_channels"


def known_channel(user, event_type: str, channel: str) -> None:
    """`channel` is `user`'s effective channel for `event_type`, read in the running transaction
    with this very instance (a step reads its referent's with its task, workflows.services): kept
    on the instance, which lives as long as the step's read, for `channels_for`."""
    user.__dict__.setdefault(KNOWN_CHANNELS, {})[event_type] = channel


def forget_channels(user) -> None:
    """The user's channels changed (`preferences_save`): none is known on this instance any more."""
    user.__dict__.pop(KNOWN_CHANNELS, None)


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def queue_emails(users, *, subject: str, body_text: str, body_html: str) -> int:
    """The same e-mail to each of `users` who has an address, in the caller's transaction (e.g. the
    minutes of a weekly review). Returns how many were queued."""
    emails = [
        OutboxEmail(
            recipient=user,
            to=user.email,
            subject=" ".join(subject.split())[:250],
            body_text=body_text,
            body_html=body_html,
        )
        for user in users
        if user.email
    ]
    OutboxEmail.objects.bulk_create(emails)
    return len(emails)


def queue_immediate(notifications) -> None:
    """One e-mail per notification, in the caller's transaction."""
    from notifications.selectors import target_url

    now = timezone.now()
    emails = []
    for notification in notifications:
        user = notification.recipient
        if not user.email:
            continue
        context = {"user": user, "notification": notification, "url": absolute(target_url(notification))}
        with translation.override("fr"):
            emails.append(
                OutboxEmail(
                    recipient=user,
                    to=user.email,
                    # A header holds one line: any line break of the text would stop the send.
                    subject=f"[Territoires de solutions] {' '.join(notification.text.split())[:180]}",
                    body_text=render_to_string("notifications/email/notification.txt", context),
                    body_html=render_to_string("notifications/email/notification.html", context),
                )
            )
        notification.emailed_at = now
    if not emails:
        return  # the usual case: nobody asked for an immediate e-mail (no query, nothing to build)
    OutboxEmail.objects.bulk_create(emails)
    Notification.objects.filter(pk__in=[n.pk for n in notifications if n.emailed_at]).update(emailed_at=now)


def build_digests(now=None) -> int:
    """One e-mail per user gathering their unread, not yet e-mailed notifications whose channel
    is the digest; at most one digest per user every 20 hours. Returns how many were queued."""
    from notifications.selectors import for_user, target_url

    now = now or timezone.now()
    recent = OutboxEmail.objects.filter(is_digest=True, created_at__gte=now - DIGEST_SPACING).values(
        "recipient_id"
    )
    pending = (
        Notification.objects.filter(
            emailed_at__isnull=True, read_at__isnull=True, created_at__lte=now, recipient__is_active=True
        )
        .exclude(recipient__email="")
        .exclude(recipient_id__in=recent)
        .select_related("recipient", "case", "service_request")
        .order_by("recipient_id", "pk")
    )
    by_user: dict[int, list[Notification]] = {}
    for notification in pending:
        by_user.setdefault(notification.recipient_id, []).append(notification)
    queued = 0
    for notifications in by_user.values():
        user = notifications[0].recipient
        preferences = dict(user.notification_preferences.values_list("event_type", "channel"))
        # Only what the user may still see (a case they lost is left out), in the digest channel.
        visible = set(
            for_user(user).filter(pk__in=[n.pk for n in notifications]).values_list("pk", flat=True)
        )
        included = [
            n
            for n in notifications
            if n.pk in visible
            and preferences.get(n.event_type, default_channel(n.event_type)) == Channel.DIGEST
        ]
        if not included:
            continue
        items = [(n, absolute(target_url(n))) for n in included]
        context = {"user": user, "items": items, "inbox_url": absolute("/notifications/")}
        with translation.override("fr"):
            OutboxEmail.objects.create(
                recipient=user,
                to=user.email,
                subject=f"[Territoires de solutions] Votre résumé du jour ({len(items)})",
                body_text=render_to_string("notifications/email/digest.txt", context),
                body_html=render_to_string("notifications/email/digest.html", context),
                is_digest=True,
            )
        Notification.objects.filter(pk__in=[n.pk for n in included]).update(emailed_at=now)
        queued += 1
    return queued


# The server itself is unreachable, silent or gone: the next rows would wait as long, stop the pass.
SERVER_FAILURES = (TimeoutError, ConnectionError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError)


def claim_timeout() -> timedelta:
    return timedelta(seconds=settings.OUTBOX_CLAIM_TIMEOUT)


def message_id(email_id: int) -> str:
    """The e-mail's Message-ID, derived from its row: the same on every retry and re-send."""
    domain = urlsplit(settings.SITE_URL).hostname or "localhost"
    return f"<outbox-{email_id}@{domain}>"


def _claim(email_id: int, now) -> bool:
    """Take the row for one send, counting the attempt before it starts."""
    return bool(
        OutboxEmail.objects.filter(pk=email_id, sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - claim_timeout()))
        .update(claimed_at=now, attempt_started_at=now, attempts=F("attempts") + 1)
    )


def drain(limit: int = 100) -> int:
    """Send the due e-mails; return how many were sent."""
    now = timezone.now()
    due = list(
        OutboxEmail.objects.filter(
            sent_at__isnull=True,
            next_attempt_at__lte=now,
            attempts__lt=MAX_ATTEMPTS,
            recipient__is_active=True,
        ).values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for email_id in due:
        # Claimed just before its own send (not at the start of the pass): the claim timeout
        # covers one message, never the ones sent before it.
        if not _claim(email_id, timezone.now()):
            continue  # another worker has it
        email = OutboxEmail.objects.get(pk=email_id)
        try:
            message = EmailMultiAlternatives(
                email.subject,
                email.body_text,
                settings.DEFAULT_FROM_EMAIL,
                [email.to],
                headers={"Message-ID": message_id(email.pk)},
            )
            message.attach_alternative(email.body_html, "text/html")
            message.send()
        except Exception as error:  # the mail server failed: retry later, with back-off
            OutboxEmail.objects.filter(pk=email_id).update(
                claimed_at=None,
                last_error=str(error)[:2000],
                next_attempt_at=timezone.now() + min(timedelta(minutes=2**email.attempts), MAX_BACKOFF),
            )
            logger.warning("outbox: e-mail %s failed (attempt %s)", email_id, email.attempts)
            if isinstance(error, SERVER_FAILURES):
                break  # the other rows stay due for the next pass
            continue
        OutboxEmail.objects.filter(pk=email_id).update(sent_at=timezone.now())
        sent += 1
    return sent


def run_periodic(now=None) -> int:
    """What the worker loop does besides the timers: digests at their hour, then the outbox."""
    now = now or timezone.now()
    if timezone.localtime(now).hour >= settings.DIGEST_HOUR:
        build_digests(now)
    return drain()
