from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from dsfr.forms import DsfrBaseForm

from casework.enums import CaseOutcome, InterventionKind, InterventionStatus, NeedStatus, ToolboxCategory
from casework.forms import DateInput
from casework.models import Membership, Need, Organisation, ToolboxService
from casework.validators import validate_plan_date
from workflows.models import DeclineReason, EscalationDecision


class RequestOpenForm(DsfrBaseForm):
    need = forms.ModelChoiceField(label=_("Need"), queryset=Need.objects.none())
    service = forms.ModelChoiceField(
        label=_("Precise toolbox service"),
        queryset=ToolboxService.objects.none(),
        required=False,
        help_text=_("Leave empty to let the platform route the request by category."),
    )
    category = forms.ChoiceField(
        label=_("Or a category"), choices=[("", "—"), *ToolboxCategory.choices], required=False
    )
    brief = forms.CharField(
        label=_("What you expect from the partner"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    desired_date = forms.DateField(
        label=_("Wanted by"), required=False, widget=DateInput(), validators=[validate_plan_date]
    )
    submission_id = forms.UUIDField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, case, services, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["need"].queryset = case.needs.filter(status__in=[NeedStatus.OPEN, NeedStatus.IN_PROGRESS])
        self.fields["service"].queryset = services
        self.fields["service"].label_from_instance = lambda s: f"{s.name} — {s.provider.name}"

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("service") and not cleaned.get("category"):
            raise ValidationError(_("Choose a toolbox service or a category."))
        return cleaned


class DeclineForm(DsfrBaseForm):
    reason = forms.ChoiceField(label=_("Reason"), choices=DeclineReason.choices)
    reason_text = forms.CharField(
        label=_("Details"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    suggested_organisation = forms.ModelChoiceField(
        label=_("Suggest another organisation"),
        queryset=Organisation.objects.filter(is_active=True).order_by("name"),
        required=False,
    )


class DispatchForm(DsfrBaseForm):
    provider = forms.ModelChoiceField(
        label=_("Partner organisation"), queryset=Organisation.objects.filter(is_active=True).order_by("name")
    )


class InterventionPlanForm(DsfrBaseForm):
    kind = forms.ChoiceField(label=_("Kind"), choices=InterventionKind.choices)
    planned_on = forms.DateField(label=_("Planned on"), widget=DateInput(), validators=[validate_plan_date])
    notes = forms.CharField(
        label=_("Notes"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )


class InterventionRecordForm(DsfrBaseForm):
    intervention = forms.IntegerField(widget=forms.HiddenInput)
    status = forms.ChoiceField(
        label=_("What happened"),
        choices=[(InterventionStatus.DONE, _("Done")), (InterventionStatus.CANCELLED, _("Cancelled"))],
    )
    outcome = forms.CharField(label=_("Outcome"), required=False, max_length=2000)


class DeliverForm(DsfrBaseForm):
    candidates = forms.IntegerField(
        label=_("Candidates proposed"), required=False, min_value=0, max_value=10000
    )
    hires = forms.IntegerField(label=_("Hires"), required=False, min_value=0, max_value=10000)
    trainings = forms.IntegerField(
        label=_("People entering training"), required=False, min_value=0, max_value=10000
    )
    result_text = forms.CharField(
        label=_("Result"), max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )


class ValidateForm(DsfrBaseForm):
    comment = forms.CharField(
        label=_("Comment (required to send back)"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class CancelForm(DsfrBaseForm):
    reason = forms.CharField(label=_("Reason"), max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


class EscalationForm(DsfrBaseForm):
    text = forms.CharField(label=_("What blocks"), max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


class EscalationDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=EscalationDecision.choices)
    text = forms.CharField(required=False, max_length=5000)
    need = forms.ModelChoiceField(queryset=Need.objects.none(), required=False)
    service = forms.ModelChoiceField(queryset=ToolboxService.objects.none(), required=False)
    to_membership = forms.ModelChoiceField(queryset=Membership.objects.none(), required=False)
    outcome = forms.ChoiceField(choices=[("", "—"), *CaseOutcome.choices], required=False)

    def __init__(self, *args, case, services, memberships, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["need"].queryset = case.needs.all()
        self.fields["service"].queryset = services
        self.fields["to_membership"].queryset = memberships
