"""Forms validate and explain input; the services decide. Every message is in plain French."""

import datetime
import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _
from dsfr.forms import DsfrBaseForm, DsfrBoundField
from dsfr.utils import dsfr_input_class_attr

from casework.enums import CaseOutcome, CaseState, SizeBand, ToolboxCategory
from casework.models import Membership, Need, Organisation, PilotSite, Territory
from casework.validators import normalise_naf, normalise_siret, validate_plan_date

# django-dsfr marks optional fields with this string and ships no French for it: declared here
# so that it enters our catalogue (« (facultatif) »).
DSFR_OPTIONAL_MARK = _("(Optional)")


class DsfrModelForm(forms.ModelForm):
    template_name = "dsfr/form_snippet.html"
    bound_field_class = DsfrBoundField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for visible in self.visible_fields():
            dsfr_input_class_attr(visible)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)


class PeriodMixin:
    """`start` and `end` date fields of a report (both days included): no date before `earliest`
    (earlier ones are typing errors) nor after `latest()`, the start not after the end, at most
    `max_days` days. Explained in French on the fields."""

    earliest = datetime.date(2000, 1, 1)  # nothing is older than the platform
    max_days = 366
    ahead_days = 0  # how far after today the end may go

    def _clean_day(self, name):
        day = self.cleaned_data[name]
        latest = timezone.localdate() + datetime.timedelta(days=self.ahead_days)
        if day < self.earliest:
            raise ValidationError(
                _("Choose a date from %(date)s onwards.")
                % {"date": date_format(self.earliest, "SHORT_DATE_FORMAT")},
                code="too_early",
            )
        if day > latest:
            if not self.ahead_days:
                raise ValidationError(_("Choose a date no later than today."), code="future")
            raise ValidationError(
                _("Choose a date no later than %(date)s.")
                % {"date": date_format(latest, "SHORT_DATE_FORMAT")},
                code="too_late",
            )
        return day

    def clean_start(self):
        return self._clean_day("start")

    def clean_end(self):
        return self._clean_day("end")

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if start > end:
                self.add_error("end", _("The end date must be on or after the start date."))
            elif (end - start).days + 1 > self.max_days:
                self.add_error(
                    "end", _("Choose a period of at most %(days)s days.") % {"days": self.max_days}
                )
        return data


class CaseProposeForm(DsfrBaseForm):
    site = forms.ModelChoiceField(label=_("Pilot site"), queryset=PilotSite.objects.none())
    referent_organisation = forms.ModelChoiceField(
        label=_("You act as referent for"), queryset=Organisation.objects.none()
    )
    siret = forms.CharField(
        label=_("SIRET"), max_length=20, help_text=_("14 digits, spaces allowed. Example: 732 829 320 00074")
    )
    name = forms.CharField(label=_("Company name"), max_length=200)
    naf_code = forms.CharField(
        label=_("NAF (APE) code"), max_length=7, help_text=_("Example: 25.62B or 2562B")
    )
    size_band = forms.ChoiceField(label=_("Headcount"), choices=SizeBand.choices)
    address = forms.CharField(label=_("Address"), max_length=250, required=False)
    postcode = forms.CharField(label=_("Postcode"), max_length=5, required=False)
    commune = forms.CharField(label=_("Commune"), max_length=100)
    territory = forms.ModelChoiceField(
        label=_("Territory of the company"),
        queryset=Territory.objects.select_related("department"),
        help_text=_("A territory of the site's department."),
    )
    contact_name = forms.CharField(label=_("Contact in the company"), max_length=150, required=False)
    contact_email = forms.EmailField(label=_("Contact e-mail"), required=False)
    contact_phone = forms.CharField(label=_("Contact phone"), max_length=30, required=False)
    summary = forms.CharField(
        label=_("Context"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("What the company told you about its recruitment difficulties."),
    )
    consent = forms.BooleanField(
        label=_(
            "The company agrees that the information of its case is shared among the partners of the "
            "experiment, under their obligation of confidentiality."
        ),
        required=False,
        help_text=_("Required before the animators can enrol the company. You can record it later."),
    )

    def __init__(self, *args, sites, organisations, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        self.fields["referent_organisation"].queryset = organisations
        if not self.is_bound:
            only_organisation = list(organisations[:2])
            if len(only_organisation) == 1:
                self.fields["referent_organisation"].initial = only_organisation[0]
            only_site = list(sites[:2])
            if len(only_site) == 1:
                self.fields["site"].initial = only_site[0]
                self.fields["territory"].initial = only_site[0].territory_id

    def clean_siret(self):
        return normalise_siret(self.cleaned_data["siret"])

    def clean_naf_code(self):
        return normalise_naf(self.cleaned_data["naf_code"])

    def clean_postcode(self):
        postcode = self.cleaned_data["postcode"].strip()
        if postcode and not re.fullmatch(r"[0-9]{5}", postcode):
            raise ValidationError(_("A postcode has 5 digits."))
        return postcode

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(_("Please give the company's name."))
        return name

    def clean(self):
        cleaned = super().clean()
        site, territory = cleaned.get("site"), cleaned.get("territory")
        if site and territory and territory.department_id != site.department_id:
            self.add_error(
                "territory",
                _("Choose a territory in %(department)s (%(code)s).")
                % {"department": site.department.name, "code": site.department.code},
            )
        return cleaned


class TransitionForm(DsfrBaseForm):
    expected_state = forms.ChoiceField(choices=CaseState.choices, widget=forms.HiddenInput)
    reason = forms.CharField(
        label=_("Reason"), required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )
    outcome = forms.ChoiceField(label=_("Outcome"), required=False, choices=[("", "—"), *CaseOutcome.choices])


class NeedForm(DsfrModelForm):
    submission_id = forms.UUIDField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Need
        fields = ["category", "description", "quantity", "deadline"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "deadline": DateInput(),
        }
        help_texts = {
            "description": _(
                "For example: recruit 3 welders, train 5 operators, housing for seasonal staff."
            ),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["deadline"].validators.append(validate_plan_date)

    def clean_description(self):
        description = self.cleaned_data["description"].strip()
        if not description:
            raise ValidationError(_("Please describe the need."))
        if len(description) > 5000:
            raise ValidationError(_("Please keep the description under 5,000 characters."))
        return description

    def clean_quantity(self):
        quantity = self.cleaned_data["quantity"]
        if quantity is not None and not 1 <= quantity <= 10000:
            raise ValidationError(_("Enter a number between 1 and 10,000."))
        return quantity


class NeedEditForm(NeedForm):
    submission_id = None  # edits are idempotent: no submission identifier

    class Meta(NeedForm.Meta):
        fields = [*NeedForm.Meta.fields, "status"]


class CaseFilterForm(forms.Form):
    site = forms.ModelChoiceField(label=_("Site"), queryset=PilotSite.objects.all(), required=False)
    state = forms.ChoiceField(
        label=_("State"), choices=[("", _("All states")), *CaseState.choices], required=False
    )
    q = forms.CharField(label=_("Company name or SIRET"), required=False, max_length=100)


class ToolboxFilterForm(forms.Form):
    territory = forms.ModelChoiceField(
        label=_("Territory"), queryset=Territory.objects.select_related("department"), required=False
    )
    category = forms.ChoiceField(
        label=_("Category"), choices=[("", _("All categories")), *ToolboxCategory.choices], required=False
    )


class HandoverForm(DsfrBaseForm):
    to_membership = forms.ModelChoiceField(
        label=_("New referent"),
        queryset=Membership.objects.none(),
        help_text=_("Advisers who may act as referent for an organisation serving the site."),
    )
    message = forms.CharField(
        label=_("Message"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, memberships, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to_membership"].queryset = memberships
        self.fields["to_membership"].label_from_instance = lambda m: f"{m.user} — {m.organisation.name}"


class CommentForm(DsfrBaseForm):
    body = forms.CharField(
        label=_("Your comment"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "Type @ and the start of someone's e-mail address to tell them, e.g. @claire.martin. "
            "Only people who can see this case can be mentioned."
        ),
        error_messages={
            "required": _("Please write your comment."),
            "max_length": _("Please keep the comment under 5,000 characters."),
        },
    )
    submission_id = forms.UUIDField(widget=forms.HiddenInput, required=False)
