from django import forms
from django.utils.translation import gettext_lazy as _

from casework.enums import ToolboxCategory


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
