"""Choice lists of the domain. Values are stable identifiers; labels are translated."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class OrganisationKind(models.TextChoices):
    FRANCE_TRAVAIL = "france_travail", _("France Travail agency")
    MISSION_LOCALE = "mission_locale", _("Mission locale")
    REGION = "region", _("Region or regional agency")
    DREETS = "dreets", _("DREETS")
    OPCO = "opco", _("OPCO")
    CCI = "cci", _("Chamber of commerce (CCI)")
    CMA = "cma", _("Chamber of trades (CMA)")
    EPCI = "epci", _("Intercommunality (EPCI)")
    DEPARTEMENT = "departement", _("Département")
    RECTORAT = "rectorat", _("Rectorat / CLEE")
    CAP_EMPLOI = "cap_emploi", _("Cap emploi")
    TRAINING = "training", _("Training body")
    HOUSING = "housing", _("Housing body")
    MOBILITY = "mobility", _("Mobility platform")
    OTHER = "other", _("Other")


class ToolboxCategory(models.TextChoices):
    RECRUITMENT = "recruitment", _("Recruitment")
    TRAINING = "training", _("Training")
    INSERTION = "insertion", _("Insertion")
    ORIENTATION = "orientation", _("Orientation")
    HR_SUPPORT = "hr_support", _("HR support")
    HOUSING = "housing", _("Housing")
    MOBILITY = "mobility", _("Transport and mobility")
    CHILDCARE = "childcare", _("Childcare")
    OTHER = "other", _("Other")


class SizeBand(models.TextChoices):
    """INSEE headcount bands (tranches d'effectif salarié)."""

    B0 = "00", _("0 employees")
    B1_2 = "01", _("1 to 2 employees")
    B3_5 = "02", _("3 to 5 employees")
    B6_9 = "03", _("6 to 9 employees")
    B10_19 = "11", _("10 to 19 employees")
    B20_49 = "12", _("20 to 49 employees")
    B50_99 = "21", _("50 to 99 employees")
    B100_199 = "22", _("100 to 199 employees")
    B200_249 = "31", _("200 to 249 employees")
    B250_499 = "32", _("250 to 499 employees")
    B500_999 = "41", _("500 to 999 employees")
    B1000_PLUS = "42", _("1,000 employees or more")


class CaseState(models.TextChoices):
    PROPOSED = "proposed", _("Proposed")
    ENROLLED = "enrolled", _("Enrolled")
    DIAGNOSED = "diagnosed", _("Needs diagnosed")
    ACTIVE = "active", _("Active")
    FOLLOW_UP = "follow_up", _("Follow-up")
    CLOSED = "closed", _("Closed")
    REFUSED = "refused", _("Refused")
    WITHDRAWN = "withdrawn", _("Withdrawn")


OPEN_CASE_STATES = (
    CaseState.PROPOSED,
    CaseState.ENROLLED,
    CaseState.DIAGNOSED,
    CaseState.ACTIVE,
    CaseState.FOLLOW_UP,
)
# States that occupy one of the site's enrolment places (the cap counts these).
ENROLLED_CASE_STATES = (CaseState.ENROLLED, CaseState.DIAGNOSED, CaseState.ACTIVE, CaseState.FOLLOW_UP)
FINAL_CASE_STATES = (CaseState.CLOSED, CaseState.REFUSED, CaseState.WITHDRAWN)


class CaseOutcome(models.TextChoices):
    NEEDS_MET = "needs_met", _("Needs met")
    PARTLY_MET = "partly_met", _("Needs partly met")
    NOT_MET = "not_met", _("Needs not met")
    COMPANY_LEFT = "company_left", _("Company no longer involved")


class NeedStatus(models.TextChoices):
    OPEN = "open", _("Open")
    IN_PROGRESS = "in_progress", _("In progress")
    MET = "met", _("Met")
    ABANDONED = "abandoned", _("Abandoned")


class InterventionKind(models.TextChoices):
    MEETING = "meeting", _("Meeting")
    COMPANY_VISIT = "company_visit", _("Company visit")
    JOB_DATING = "job_dating", _("Job dating")
    INFORMATION_SESSION = "information_session", _("Information session")
    TRAINING_SESSION = "training_session", _("Training session")
    RECRUITMENT_SESSION = "recruitment_session", _("Recruitment session")
    OTHER = "other", _("Other")


class InterventionStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")


class AnimatorRole(models.TextChoices):
    CDET = "cdet", _("CDET (State)")
    DTOE = "dtoe", _("DTOE (Region)")
