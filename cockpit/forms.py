from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from casework.enums import ToolboxCategory
from casework.forms import DateInput
from cockpit.models import ACTION_MAX_DUE_DAYS, EntryKind, ReviewSchedule


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


class ReviewEntryForm(forms.Form):
    """What the animators record on an agenda item. An action item needs its owner (offered: the
    case's referent and the site's animators) and its due date; the other kinds ignore both."""

    kind = forms.ChoiceField(
        label=_("Kind"), choices=EntryKind.choices, widget=forms.RadioSelect, initial=EntryKind.DECISION
    )
    text = forms.CharField(
        label=_("What was said"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "class": "fr-input"}),
    )
    owner = forms.TypedChoiceField(
        label=_("Owner of the action item"),
        coerce=int,
        required=False,
        empty_value=None,
        widget=forms.Select(attrs={"class": "fr-select"}),
    )
    due_on = forms.DateField(
        label=_("Due date of the action item"), required=False, widget=DateInput(attrs={"class": "fr-input"})
    )

    def __init__(self, *args, owners=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.owners = {user.pk: user for user in owners}
        self.fields["owner"].choices = [("", _("Choose…"))] + [
            (user.pk, user.get_full_name() or user.username) for user in owners
        ]

    def clean(self):
        data = super().clean()
        if data.get("kind") != EntryKind.ACTION:
            # Owner and due date belong to action items: ignored (errors included) otherwise.
            for name in ("owner", "due_on"):
                self.errors.pop(name, None)
                data[name] = None
            return data
        if data.get("owner") is None and "owner" not in self.errors:
            self.add_error("owner", _("Choose who carries the action."))
        due_on = data.get("due_on")
        today = timezone.localdate()
        if due_on is None and "due_on" not in self.errors:
            self.add_error("due_on", _("Give the date the action is due."))
        elif due_on is not None and not today <= due_on <= today + timedelta(days=ACTION_MAX_DUE_DAYS):
            self.add_error("due_on", _("Give a due date between today and one year from now."))
        return data

    def entry_fields(self) -> dict:
        """The service's arguments, once valid."""
        data = self.cleaned_data
        return {
            "kind": data["kind"],
            "text": data["text"],
            "owner": self.owners.get(data["owner"]) if data["owner"] else None,
            "due_on": data["due_on"],
        }
