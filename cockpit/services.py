"""Writes of the cockpit: explicit actor, one transaction each (the audit chain's lock first)."""

from django.utils.translation import gettext as _

from audit.chain import audited_atomic
from casework.exceptions import NotAllowedError
from casework.models import PilotSite
from cockpit.models import ReviewSchedule
from cockpit.rules import board_sites_q


@audited_atomic
def review_schedule_save(
    *, actor, site: PilotSite, weekday, time, duration_minutes, video_link=""
) -> ReviewSchedule:
    """Set when and where `site`'s weekly review is held. Its animators and platform
    administrators only."""
    if not PilotSite.objects.filter(board_sites_q(actor), pk=site.pk).exists():
        raise NotAllowedError(_("Only the site's animators set its weekly review."))
    schedule, _created = ReviewSchedule.objects.select_for_update().get_or_create(site=site)
    schedule.weekday, schedule.time = weekday, time
    schedule.duration_minutes, schedule.video_link = duration_minutes, video_link or ""
    schedule.full_clean()
    schedule.save()
    return schedule
