"""Forms of the audit pages: they validate and explain the input in plain French."""

from datetime import date, timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from dsfr.forms import DsfrBaseForm

from audit import selectors
from casework.forms import DateInput, PeriodMixin

MAX_PERIOD_DAYS = 366
EARLIEST = date(2000, 1, 1)  # nothing is older than the platform: earlier dates are typing errors


class AccessReportForm(PeriodMixin, DsfrBaseForm):
    """Whose displays, and over which days (both included)."""

    max_days = MAX_PERIOD_DAYS
    earliest = EARLIEST

    user = forms.CharField(
        label=_("User"),
        max_length=254,
        help_text=_("Their e-mail address or username, exactly as in their account."),
    )
    start = forms.DateField(label=_("From"), widget=DateInput())
    end = forms.DateField(label=_("To (included)"), widget=DateInput())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        today = timezone.localdate()
        self.fields["start"].initial = today - timedelta(days=30)
        self.fields["end"].initial = today

    def clean_user(self):
        """The one account named by the text: its exact username, else its username in another
        case, else its e-mail address."""
        typed = self.cleaned_data["user"].strip()
        found = selectors.users_named(typed)
        for matches in (
            lambda user: user.username == typed,
            lambda user: user.username.casefold() == typed.casefold(),
            lambda user: True,
        ):
            candidates = [user for user in found if matches(user)]
            if len(candidates) == 1:
                return candidates[0]
        if not found:
            raise ValidationError(_("No account has this e-mail address or username."), code="unknown")
        raise ValidationError(
            _("Several accounts match this e-mail address or username: enter the exact username."),
            code="ambiguous",
        )
