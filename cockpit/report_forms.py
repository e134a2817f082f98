"""The CLEFOP report's form: which site (or every site the user may read) and which period."""

from datetime import date, timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from dsfr.forms import DsfrBaseForm

from casework.forms import DateInput, PeriodMixin

EARLIEST = date(2000, 1, 1)  # nothing is older than the platform: earlier dates are typing errors
MAX_PERIOD_DAYS = 731  # two years
AHEAD_DAYS = 366  # a period may run until the end of the quarter or year under way
DEFAULT_DAYS = 91  # the last three months or so, up to today


class ReportForm(PeriodMixin, DsfrBaseForm):
    """The site is the short name of one of `sites` (the user's own list), or empty for all of them:
    any other value, of a site that exists or not, gets the same error."""

    earliest = EARLIEST
    max_days = MAX_PERIOD_DAYS
    ahead_days = AHEAD_DAYS

    site = forms.ChoiceField(label=_("Pilot site"), required=False)
    start = forms.DateField(label=_("From"), widget=DateInput())
    end = forms.DateField(label=_("To (included)"), widget=DateInput())

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.sites = {site.slug: site for site in sites}
        self.fields["site"].choices = [
            ("", _("All my sites")),
            *((site.slug, site.name) for site in sites),
        ]
        self.fields["site"].error_messages["invalid_choice"] = _("Choose one of the sites of the list.")
        today = timezone.localdate()
        self.fields["start"].initial = today - timedelta(days=DEFAULT_DAYS)
        self.fields["end"].initial = today

    @classmethod
    def defaults(cls) -> dict:
        today = timezone.localdate()
        return {"site": "", "start": today - timedelta(days=DEFAULT_DAYS), "end": today}

    def clean_site(self):
        slug = self.cleaned_data["site"]
        return self.sites[slug] if slug else None
