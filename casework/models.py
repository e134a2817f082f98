"""Domain model: geography, organisations, users and roles, companies and their cases.

Business rules live in `casework.services` (writes) and `casework.selectors` (user-scoped reads);
the models hold the data, the database constraints and the case state machine.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce, Least
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from casework import rules
from casework.enums import (
    ENROLLED_CASE_STATES,
    OPEN_CASE_STATES,
    AnimatorRole,
    CaseOutcome,
    CaseState,
    InterventionKind,
    InterventionStatus,
    NeedStatus,
    OrganisationKind,
    SizeBand,
    ToolboxCategory,
)
from casework.validators import validate_naf, validate_siret

S = CaseState

# --- Geography --------------------------------------------------------------------------------


class Department(models.Model):
    code = models.CharField(_("code"), max_length=3, unique=True)
    name = models.CharField(_("name"), max_length=100)

    class Meta:
        ordering = ["code"]
        verbose_name = _("department")
        verbose_name_plural = _("departments")

    def __str__(self):
        return f"{self.name} ({self.code})"


class Territory(models.Model):
    """A "territoire d'actions": the infra-departmental area shared by every institution."""

    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="territories")
    name = models.CharField(_("name"), max_length=100, unique=True)

    class Meta:
        ordering = ["department__code", "name"]
        verbose_name = _("territory")
        verbose_name_plural = _("territories")

    def __str__(self):
        return self.name


class PilotSite(models.Model):
    """A pilot employment area of the experiment (Ancenis, Saumur...)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    slug = models.SlugField(_("short name"), max_length=60, unique=True)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="pilot_sites")
    territory = models.ForeignKey(Territory, on_delete=models.PROTECT, related_name="pilot_sites")
    starts_on = models.DateField(_("start of the experiment"))
    ends_on = models.DateField(_("end of the experiment"))
    enrolment_cap = models.PositiveSmallIntegerField(_("maximum number of companies"), default=15)

    class Meta:
        ordering = ["department__code", "name"]
        verbose_name = _("pilot site")
        verbose_name_plural = _("pilot sites")
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__gt=models.F("starts_on")), name="site_window_ordered"
            ),
            models.CheckConstraint(condition=Q(enrolment_cap__gte=1), name="site_cap_positive"),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        if self.territory_id and self.department_id and self.territory.department_id != self.department_id:
            raise ValidationError({"territory": _("Choose a territory of the site's department.")})


# --- Organisations, users, roles ---------------------------------------------------------------


class Organisation(models.Model):
    """A partner structure: France Travail agency, Mission locale, OPCO, CCI..."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    kind = models.CharField(_("kind"), max_length=30, choices=OrganisationKind.choices)
    siret = models.CharField(
        _("SIRET"), max_length=14, blank=True, validators=[validate_siret], help_text=_("Optional.")
    )
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="organisations", null=True, blank=True
    )
    territories = models.ManyToManyField(
        Territory, related_name="organisations", blank=True, verbose_name=_("territories served")
    )
    serves_whole_region = models.BooleanField(
        _("serves the whole region"),
        default=False,
        help_text=_("For regional bodies (OPCO, Région...): they serve every pilot site."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")

    def __str__(self):
        return self.name


class User(AbstractUser):
    """A person using the platform. Roles come from memberships and assignments, and combine."""

    accepted_charter_version = models.CharField(
        _("accepted confidentiality charter version"), max_length=20, blank=True, editable=False
    )
    organisations = models.ManyToManyField(
        Organisation, through="Membership", related_name="members", blank=True
    )

    class Meta:
        ordering = ["last_name", "first_name", "username"]
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self):
        return self.get_full_name() or self.username

    @property
    def is_platform_admin(self) -> bool:
        return self.is_active and self.is_superuser

    @property
    def has_accepted_current_charter(self) -> bool:
        return self.accepted_charter_version == settings.CONFIDENTIALITY_CHARTER_VERSION


class Membership(models.Model):
    """A user works for an organisation; `can_be_referent` lets them take companies as referent."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="memberships")
    can_be_referent = models.BooleanField(_("may act as referent"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    job_title = models.CharField(_("job title"), max_length=120, blank=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [models.UniqueConstraint(fields=["user", "organisation"], name="membership_unique")]

    def __str__(self):
        return f"{self.user} — {self.organisation}"


class SiteAnimator(models.Model):
    """The CDET (State) and DTOE (Region) animators of a pilot site."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="animated_sites")
    site = models.ForeignKey(PilotSite, on_delete=models.CASCADE, related_name="animators")
    role = models.CharField(_("role"), max_length=10, choices=AnimatorRole.choices)

    class Meta:
        verbose_name = _("site animator")
        verbose_name_plural = _("site animators")
        constraints = [models.UniqueConstraint(fields=["user", "site"], name="site_animator_unique")]

    def __str__(self):
        return f"{self.user} — {self.get_role_display()} {self.site}"


class TerritoryObserver(models.Model):
    """A member of a local council (CLEFOP) or steering committee: aggregated figures only."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="observed_territories")
    territory = models.ForeignKey(Territory, on_delete=models.CASCADE, related_name="observers")

    class Meta:
        verbose_name = _("territory observer")
        verbose_name_plural = _("territory observers")
        constraints = [
            models.UniqueConstraint(fields=["user", "territory"], name="territory_observer_unique")
        ]

    def __str__(self):
        return f"{self.user} — {self.territory}"


class CharterAcceptance(models.Model):
    """Record of a user accepting a version of the confidentiality charter."""

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="charter_acceptances")
    version = models.CharField(_("version"), max_length=20)
    accepted_at = models.DateTimeField(_("accepted at"), default=timezone.now)

    class Meta:
        verbose_name = _("charter acceptance")
        verbose_name_plural = _("charter acceptances")
        constraints = [models.UniqueConstraint(fields=["user", "version"], name="charter_acceptance_once")]

    def __str__(self):
        return f"{self.user} — {self.version}"


# --- Companies and cases -----------------------------------------------------------------------


class Company(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    siret = models.CharField(_("SIRET"), max_length=14, unique=True, validators=[validate_siret])
    name = models.CharField(_("company name"), max_length=200)
    naf_code = models.CharField(_("NAF code"), max_length=6, validators=[validate_naf])
    size_band = models.CharField(_("headcount"), max_length=2, choices=SizeBand.choices)
    address = models.CharField(_("address"), max_length=250, blank=True)
    postcode = models.CharField(_("postcode"), max_length=5, blank=True)
    commune = models.CharField(_("commune"), max_length=100)
    territory = models.ForeignKey(Territory, on_delete=models.PROTECT, related_name="companies")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("company")
        verbose_name_plural = _("companies")

    def __str__(self):
        return self.name


class CompanyContact(models.Model):
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="contacts")
    full_name = models.CharField(_("full name"), max_length=150)
    job_title = models.CharField(_("job title"), max_length=120, blank=True)
    email = models.EmailField(_("e-mail"), blank=True)
    phone = models.CharField(_("phone"), max_length=30, blank=True)

    class Meta:
        ordering = ["full_name"]
        verbose_name = _("company contact")
        verbose_name_plural = _("company contacts")

    def __str__(self):
        return self.full_name


# A case with nothing new for this many days needs attention (the status board shows it red).
IDLE_DAYS = 14
IDLE = timedelta(days=IDLE_DAYS)


def _idle_from_now():
    return timezone.now() + IDLE


def red_at_expression(last_activity=None, deadline=None):
    """SQL for `Case.red_at` from the row's own columns: the earlier of its nearest response
    deadline and IDLE_DAYS after its last activity (`last_activity`, a datetime, or `deadline`, an
    expression, when the same UPDATE sets them). Coalesce: SQLite's MIN() gives NULL when the
    deadline is NULL."""
    if last_activity is not None:
        idle_at = models.Value(last_activity + IDLE)
    else:
        idle_at = models.ExpressionWrapper(
            models.F("last_activity_at") + IDLE, output_field=models.DateTimeField()
        )
    return Coalesce(Least(deadline if deadline is not None else models.F("next_deadline"), idle_at), idle_at)


class CaseQuerySet(models.QuerySet):
    def open(self):
        return self.filter(state__in=OPEN_CASE_STATES)

    def occupying_places(self):
        return self.filter(state__in=ENROLLED_CASE_STATES)

    def visible_to(self, user):
        """The confidentiality rule: the only way any case is read on behalf of a user."""
        return self.filter(rules.case_visibility_q(user))

    def with_list_data(self):
        return self.select_related("company", "site", "referent", "referent_organisation")


class Case(ConcurrentTransitionMixin, models.Model):
    """One company's enrolment in one pilot site, with exactly one referent at every moment."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="cases")
    site = models.ForeignKey(PilotSite, on_delete=models.PROTECT, related_name="cases")
    referent = models.ForeignKey(User, on_delete=models.PROTECT, related_name="referent_cases")
    referent_organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    state = FSMField(_("state"), default=S.PROPOSED, choices=CaseState.choices, protected=True)
    summary = models.TextField(_("context"), blank=True)

    consent_recorded_at = models.DateTimeField(_("consent recorded at"), null=True, blank=True)
    consent_recorded_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True)
    consent_text_version = models.CharField(_("consent text version"), max_length=20, blank=True)

    decision_reason = models.TextField(_("reason"), blank=True)
    outcome = models.CharField(_("outcome"), max_length=20, choices=CaseOutcome.choices, blank=True)

    created_at = models.DateTimeField(_("proposed at"), auto_now_add=True)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    enrolled_at = models.DateTimeField(_("enrolled at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    last_activity_at = models.DateTimeField(_("last activity"), default=timezone.now, db_index=True)
    # What the status board reads, so that it is one scan of the cases whatever their number: kept
    # by workflows.board.refresh_case at every step of a request, in the step's transaction.
    open_requests = models.PositiveIntegerField(_("open requests"), default=0, editable=False)
    overdue_requests = models.PositiveIntegerField(_("overdue requests"), default=0, editable=False)
    next_deadline = models.DateTimeField(
        _("nearest response deadline"), null=True, blank=True, editable=False
    )
    # When the case turns (or turned) red: the earlier of `next_deadline` and IDLE_DAYS after the
    # last activity. The board takes each column's most urgent cards from an index on it. Kept by
    # `save()`, `services.record_activity` and `workflows.board.refresh_cases` (red_at_expression).
    red_at = models.DateTimeField(_("turns red at"), default=_idle_from_now, editable=False)
    # Set when the case's free text and contacts were wiped after the retention period
    # (casework.retention); its states, outcome, dates and counts stay for the statistics.
    anonymised_at = models.DateTimeField(_("anonymised at"), null=True, blank=True, editable=False)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["-last_activity_at", "-id"]
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        constraints = [
            models.UniqueConstraint(
                fields=["company", "site"],
                condition=Q(state__in=OPEN_CASE_STATES),
                name="one_open_case_per_company_and_site",
                violation_error_message=_("This company already has an open case on this site."),
            ),
            models.CheckConstraint(
                condition=~Q(state=S.CLOSED) | ~Q(outcome=""), name="closed_case_has_outcome"
            ),
            models.CheckConstraint(
                condition=Q(state__in=[S.PROPOSED, S.REFUSED, S.WITHDRAWN])
                | Q(consent_recorded_at__isnull=False),
                name="enrolled_case_has_consent",
            ),
        ]
        indexes = [
            # By site and state; the status board reads its counters and the order of its cards
            # from this index alone on PostgreSQL (an index-only scan; SQLite ignores `include`).
            models.Index(
                fields=["site", "state"],
                include=["last_activity_at", "overdue_requests", "next_deadline", "referent", "id"],
                name="case_board_idx",
            ),
            models.Index(fields=["state", "red_at"], name="case_board_order_idx"),
            # The weekly review's cases idle the longest, and how many there are: an index-only range
            # scan of the site's open cases (cockpit.review).
            models.Index(
                fields=["site", "last_activity_at"],
                include=["id"],
                condition=Q(state__in=OPEN_CASE_STATES),
                name="case_idle_idx",
            ),
            # The CLEFOP report's and the weekly review's counts over a site's cases (proposed,
            # enrolled, closed in a period, by outcome; the company of each need): read from this index
            # alone on PostgreSQL instead of the cases' rows.
            models.Index(
                fields=["site"],
                include=["id", "company", "created_at", "enrolled_at", "closed_at", "state", "outcome"],
                name="case_report_idx",
            ),
        ]

    def __str__(self):
        return f"{self.company} — {self.site}"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "last_activity_at" in update_fields:
            # From the row as saved (its next_deadline is kept by workflows, not by this instance).
            Case.objects.filter(pk=self.pk).update(red_at=red_at_expression())

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_CASE_STATES

    @property
    def has_consent(self) -> bool:
        return self.consent_recorded_at is not None

    # The state machine. Permissions and conditions are functions of `casework.rules`, which
    # also explain in French why a transition is not available (see services.transition_case).

    @transition(
        field=state,
        source=S.PROPOSED,
        target=S.ENROLLED,
        permission=rules.can_decide_enrolment,
        conditions=[rules.enrolment_allowed],
        custom={"label": _("Enrol the company"), "reason": False},
    )
    def enrol(self):
        self.enrolled_at = timezone.now()

    @transition(
        field=state,
        source=S.PROPOSED,
        target=S.REFUSED,
        permission=rules.can_decide_enrolment,
        custom={"label": _("Refuse the enrolment"), "reason": True},
    )
    def refuse(self):
        self.closed_at = timezone.now()

    @transition(
        field=state,
        source=S.ENROLLED,
        target=S.DIAGNOSED,
        permission=rules.is_case_referent,
        conditions=[rules.has_needs],
        custom={"label": _("Confirm the needs diagnosis"), "reason": False},
    )
    def diagnose(self):
        pass

    @transition(
        field=state,
        source=S.DIAGNOSED,
        target=S.ACTIVE,
        permission=rules.is_case_referent,
        conditions=[rules.has_open_needs],
        custom={"label": _("Start the support"), "reason": False},
    )
    def activate(self):
        pass

    @transition(
        field=state,
        source=S.ACTIVE,
        target=S.FOLLOW_UP,
        permission=rules.is_case_referent,
        conditions=[rules.no_open_requests],
        custom={"label": _("Move to follow-up"), "reason": False},
    )
    def follow_up(self):
        pass

    @transition(
        field=state,
        source=[S.ACTIVE, S.FOLLOW_UP],
        target=S.CLOSED,
        permission=rules.is_referent_or_animator,
        conditions=[rules.no_open_requests],
        custom={"label": _("Close the case"), "reason": False, "outcome": True},
    )
    def close(self):
        self.closed_at = timezone.now()

    @transition(
        field=state,
        source=[S.PROPOSED, S.ENROLLED, S.DIAGNOSED, S.ACTIVE, S.FOLLOW_UP],
        target=S.WITHDRAWN,
        permission=rules.is_referent_or_animator,
        conditions=[rules.no_open_requests],
        custom={"label": _("Withdraw the case"), "reason": True},
    )
    def withdraw(self):
        self.closed_at = timezone.now()


class HandoverStatus(models.TextChoices):
    PROPOSED = "proposed", _("Proposed")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")
    CANCELLED = "cancelled", _("Cancelled")


class Handover(models.Model):
    """A proposed change of referent: the case changes hands only when the new referent accepts."""

    case = models.ForeignKey("Case", on_delete=models.CASCADE, related_name="handovers")
    from_user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    to_user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="handovers_received")
    to_organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    proposed_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(_("proposed at"), default=timezone.now)
    message = models.TextField(_("message"), blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=HandoverStatus.choices, default=HandoverStatus.PROPOSED
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)

    class Meta:
        ordering = ["-proposed_at", "-id"]
        verbose_name = _("referent handover")
        verbose_name_plural = _("referent handovers")
        constraints = [
            models.UniqueConstraint(
                fields=["case"], condition=Q(status="proposed"), name="one_pending_handover_per_case"
            )
        ]

    def __str__(self):
        return f"{self.case} : {self.from_user} → {self.to_user}"


class CaseTransition(models.Model):
    """One row per state change of a case, written in the same transaction as the change."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="transitions")
    name = models.CharField(_("transition"), max_length=30)
    source = models.CharField(_("from"), max_length=20, choices=CaseState.choices, blank=True)
    target = models.CharField(_("to"), max_length=20, choices=CaseState.choices)
    actor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(_("at"), default=timezone.now)
    comment = models.TextField(_("comment"), blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("case transition")
        verbose_name_plural = _("case transitions")

    def __str__(self):
        return f"{self.case} : {self.source or '∅'} → {self.target}"


class Need(models.Model):
    """An HR need of the company, recorded on its case."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="needs")
    category = models.CharField(_("toolbox category"), max_length=20, choices=ToolboxCategory.choices)
    description = models.TextField(_("description"))
    quantity = models.PositiveIntegerField(_("quantity"), null=True, blank=True)
    deadline = models.DateField(_("wanted by"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=NeedStatus.choices, default=NeedStatus.OPEN)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    # Identifier of the form that created it: the same form posted twice creates one need.
    submission_id = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("need")
        verbose_name_plural = _("needs")
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__isnull=True) | Q(quantity__gte=1), name="need_quantity"
            )
        ]

    def __str__(self):
        return f"{self.get_category_display()} — {self.description[:60]}"


class CaseComment(models.Model):
    """A message between the people following a case (referent, animators), who may @mention each
    other. The case's confidentiality applies: only someone who can see the case can be mentioned."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(_("comment"))
    mentions = models.ManyToManyField(User, related_name="+", blank=True, verbose_name=_("mentioned"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # The same form posted twice creates one comment.
    submission_id = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("case comment")
        verbose_name_plural = _("case comments")

    def __str__(self):
        return f"{self.author} — {self.body[:60]}"


class ToolboxService(models.Model):
    """An entry of the shared toolbox: a partner's answer that a referent can mobilise."""

    name = models.CharField(_("name"), max_length=200)
    category = models.CharField(_("category"), max_length=20, choices=ToolboxCategory.choices)
    provider = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="services")
    territories = models.ManyToManyField(
        Territory, related_name="services", verbose_name=_("territories served")
    )
    description = models.TextField(_("description"), blank=True)
    response_time_days = models.PositiveSmallIntegerField(
        _("expected response time (business days)"), default=5
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["category", "name"]
        verbose_name = _("toolbox service")
        verbose_name_plural = _("toolbox services")
        constraints = [
            models.UniqueConstraint(fields=["provider", "name"], name="service_unique_per_provider"),
            models.CheckConstraint(
                condition=Q(response_time_days__gte=1, response_time_days__lte=60),
                name="service_response_time",
            ),
        ]

    def __str__(self):
        return self.name


class Intervention(models.Model):
    """A planned and traced action of a partner for a company (meeting, job dating, visit...)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="interventions")
    service_request = models.ForeignKey(
        "workflows.ServiceRequest",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="interventions",
        verbose_name=_("service request"),
    )
    kind = models.CharField(_("kind"), max_length=30, choices=InterventionKind.choices)
    planned_on = models.DateField(_("planned on"))
    owner_organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="interventions"
    )
    owner = models.ForeignKey(User, on_delete=models.PROTECT, related_name="interventions")
    status = models.CharField(
        _("status"), max_length=20, choices=InterventionStatus.choices, default=InterventionStatus.PLANNED
    )
    notes = models.TextField(_("notes"), blank=True)
    outcome = models.TextField(_("outcome"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    reminder_sent_at = models.DateTimeField(_("reminder sent at"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["planned_on", "id"]
        verbose_name = _("intervention")
        verbose_name_plural = _("interventions")
        constraints = [
            models.CheckConstraint(
                condition=~Q(status=InterventionStatus.DONE) | ~Q(outcome=""),
                name="done_intervention_has_outcome",
            )
        ]

    def __str__(self):
        return f"{self.get_kind_display()} — {self.planned_on}"
