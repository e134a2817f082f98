"""Data of the animators' cockpit."""

import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class CalendarFeed(models.Model):
    """A user's personal calendar feed (ICS): its secret URL holds a random token, of which only the
    hash is kept. Revoking the feed deletes the row: the URL stops working at once."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="calendar_feed",
        verbose_name=_("user"),
    )
    token_hash = models.CharField(_("hash of the token"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("calendar feed")
        verbose_name_plural = _("calendar feeds")

    def __str__(self):
        return f"{self.user} — {self.created_at:%Y-%m-%d}"


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")


class ReviewSchedule(models.Model):
    """When a pilot site's animators hold their weekly review, and where (a video-call link)."""

    site = models.OneToOneField(
        "casework.PilotSite",
        on_delete=models.CASCADE,
        related_name="review_schedule",
        verbose_name=_("pilot site"),
    )
    weekday = models.PositiveSmallIntegerField(_("day"), choices=Weekday.choices, default=Weekday.TUESDAY)
    time = models.TimeField(_("time"), default=datetime.time(10, 0))
    duration_minutes = models.PositiveSmallIntegerField(
        _("duration (minutes)"), default=60, validators=[MinValueValidator(15), MaxValueValidator(240)]
    )
    video_link = models.URLField(_("video-call link"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("weekly review schedule")
        verbose_name_plural = _("weekly review schedules")

    def __str__(self):
        return f"{self.site} — {self.get_weekday_display()} {self.time:%H:%M}"

    def next_start(self, now=None):
        """The next meeting's start (or the one under way), as an aware datetime."""
        now = timezone.localtime(now or timezone.now())
        day = now.date() + datetime.timedelta(days=(self.weekday - now.weekday()) % 7)
        start = timezone.make_aware(datetime.datetime.combine(day, self.time))
        if start + datetime.timedelta(minutes=self.duration_minutes) <= now:
            start = timezone.make_aware(
                datetime.datetime.combine(day + datetime.timedelta(days=7), self.time)
            )
        return start


class WeeklyReview(models.Model):
    """One pilot site's weekly review meeting: its agenda is frozen when the animators open it (the
    items), they record what was said per item (the entries), and closing it archives the minutes
    (French) and e-mails them to the participants. At most one per site and week."""

    class Status(models.TextChoices):
        OPEN = "open", _("in progress")
        CLOSED = "closed", _("closed")

    site = models.ForeignKey(
        "casework.PilotSite",
        on_delete=models.CASCADE,
        related_name="weekly_reviews",
        verbose_name=_("pilot site"),
    )
    week = models.DateField(_("week of"), help_text=_("The Monday of the review's week."))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    since = models.DateTimeField(_("agenda from"))
    opened_at = models.DateTimeField(_("opened at"))
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("opened by")
    )
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("closed by"),
    )
    participants = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+", verbose_name=_("participants")
    )
    minutes = models.TextField(_("minutes"), blank=True)

    class Meta:
        ordering = ["-week", "-pk"]
        verbose_name = _("weekly review")
        verbose_name_plural = _("weekly reviews")
        constraints = [models.UniqueConstraint(fields=["site", "week"], name="one_review_per_site_and_week")]

    def __str__(self):
        return f"{self.site} — {self.week:%Y-%m-%d}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class ReviewItem(models.Model):
    """One company on a review's agenda, with the reasons it was there when the review opened
    (a snapshot, in French: the minutes must say what the animators saw)."""

    review = models.ForeignKey(WeeklyReview, on_delete=models.CASCADE, related_name="items")
    case = models.ForeignKey("casework.Case", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(_("position"))
    company = models.CharField(_("company"), max_length=255)
    referent = models.CharField(_("referent"), max_length=255)
    # [{"kind": ..., "text": ..., "url": ...}], in the order of cockpit.review.ORDER
    reasons = models.JSONField(_("reasons"), default=list)

    class Meta:
        ordering = ["review", "position"]
        verbose_name = _("review item")
        verbose_name_plural = _("review items")
        constraints = [
            models.UniqueConstraint(fields=["review", "case"], name="one_item_per_case_and_review")
        ]

    def __str__(self):
        return f"{self.review} — {self.company}"


# How far ahead an action item may be due.
ACTION_MAX_DUE_DAYS = 366


class EntryKind(models.TextChoices):
    DECISION = "decision", _("Decision")
    INFORMATION = "information", _("Information")
    ACTION = "action", _("Action item")


class ReviewEntry(models.Model):
    """What the animators recorded on an item: a decision, an information, or an action item with
    its owner and due date. An action item is a task of its owner until marked done; while open
    it comes back on the agenda of the site's next reviews."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="entries")
    kind = models.CharField(_("kind"), max_length=12, choices=EntryKind.choices)
    text = models.TextField(_("text"), max_length=2000)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="review_actions",
        verbose_name=_("owner"),
    )
    due_on = models.DateField(_("due date"), null=True, blank=True)
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("done by"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        ordering = ["item", "pk"]
        verbose_name = _("review entry")
        verbose_name_plural = _("review entries")
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(kind="action") | models.Q(owner__isnull=False, due_on__isnull=False),
                name="review_action_has_owner_and_due_date",
            ),
        ]
        indexes = [models.Index(fields=["owner", "done_at"], name="review_action_owner_idx")]

    def __str__(self):
        return f"{self.get_kind_display()} — {self.text[:40]}"

    @property
    def is_open_action(self) -> bool:
        return self.kind == EntryKind.ACTION and self.done_at is None
