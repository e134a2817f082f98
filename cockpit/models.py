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
    weekday = models.PositiveSmallIntegerField(
        _("day"), choices=Weekday.choices, default=Weekday.TUESDAY
    )
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
