from django import forms
from django.utils.translation import gettext_lazy as _

from casework.enums import ToolboxCategory
from cockpit.models import ReviewSchedule


class BoardFilterForm(forms.Form):
    """The board's filters. The referent is a user id; the page offers the referents of the board's
    own cases, and any other id simply matches no case (nothing is said about that user)."""

    referent = forms.IntegerField(label=_("Referent"), required=False, min_value=1, max_value=2**63 - 1)
    category = forms.ChoiceField(
        label=_("Toolbox category"),
        required=False,
        choices=[("", _("All categories")), *ToolboxCategory.choices],
    )
    overdue = forms.BooleanField(label=_("Overdue requests only"), required=False)


class ReviewScheduleForm(forms.ModelForm):
    """When and where the site's weekly review is held. The video-call link must be an https
    address (it is given to every participant)."""

    video_link = forms.URLField(
        label=_("video-call link"),
        max_length=500,
        required=False,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"class": "fr-input"}),
    )

    class Meta:
        model = ReviewSchedule
        fields = ["weekday", "time", "duration_minutes", "video_link"]
        widgets = {
            "weekday": forms.Select(attrs={"class": "fr-select"}),
            "time": forms.TimeInput(attrs={"type": "time", "class": "fr-input"}, format="%H:%M"),
            "duration_minutes": forms.NumberInput(attrs={"class": "fr-input"}),
        }

    def clean_video_link(self):
        link = self.cleaned_data["video_link"].strip()
        if link and not link.lower().startswith("https://"):
            raise forms.ValidationError(_("Give an https:// address."), code="not_https")
        return link
