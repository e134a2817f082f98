"""factory-boy factories of the casework domain.

Every factory produces a valid, saved object with sensible defaults; the relations build what
they need (a case brings its site, company, referent and the referent's organisation).

`CaseFactory` creates a case directly in any state: pass `state=` or use a trait
(`CaseFactory(enrolled=True)`, `CaseFactory(closed=True)`...). Cases beyond "proposed" get the
company's consent recorded (the database requires it), closed ones an outcome, refused and
withdrawn ones a reason. `Case.state` is a protected FSM field: give the state to the factory,
never assign it afterwards.
"""

import datetime

import factory
from django.conf import settings
from django.utils import timezone
from factory.django import DjangoModelFactory

from casework.enums import (
    ENROLLED_CASE_STATES,
    FINAL_CASE_STATES,
    AnimatorRole,
    CaseOutcome,
    CaseState,
    InterventionKind,
    NeedStatus,
    OrganisationKind,
    SizeBand,
    ToolboxCategory,
)
from casework.models import (
    Case,
    Company,
    Department,
    Intervention,
    Membership,
    Need,
    Organisation,
    PilotSite,
    SiteAnimator,
    Territory,
    TerritoryObserver,
    ToolboxService,
    User,
)

TEST_PASSWORD = "Test-password-2026"
LA_POSTE_SIREN = "356000000"


def luhn_check_digit(digits: str) -> str:
    """The digit to append to `digits` so that the whole number passes the Luhn check."""
    total = 0
    # Walking from the right of the final number: the appended digit is position 0 (not doubled),
    # so the rightmost digit of `digits` is doubled.
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def make_siret(n: int) -> str:
    """A valid SIRET, deterministic and distinct for each n in [0, 10**7).

    The SIREN (8 digits from n + its Luhn key) and the whole 14 digits (SIREN + NIC "0001" +
    Luhn key) both pass the Luhn check; the La Poste SIREN (other checksum) is never produced.
    """
    if not 0 <= n < 10**7:
        raise ValueError("make_siret(n) needs 0 <= n < 10**7")
    body = f"{10_000_000 + n:08d}"  # 1xxxxxxx: never 35600000
    siren = body + luhn_check_digit(body)
    nic = "0001"
    return siren + nic + luhn_check_digit(siren + nic)


# --- Geography ---------------------------------------------------------------------------------


class DepartmentFactory(DjangoModelFactory):
    class Meta:
        model = Department
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"9{n % 100:02d}")
    name = factory.Sequence(lambda n: f"Département {n}")


class TerritoryFactory(DjangoModelFactory):
    class Meta:
        model = Territory

    department = factory.SubFactory(DepartmentFactory)
    name = factory.Sequence(lambda n: f"Territoire d'actions {n}")


class PilotSiteFactory(DjangoModelFactory):
    class Meta:
        model = PilotSite

    name = factory.Sequence(lambda n: f"Site pilote {n}")
    slug = factory.Sequence(lambda n: f"site-pilote-{n}")
    department = factory.SubFactory(DepartmentFactory)
    territory = factory.SubFactory(TerritoryFactory, department=factory.SelfAttribute("..department"))
    starts_on = datetime.date(2026, 1, 5)
    ends_on = datetime.date(2028, 12, 31)
    enrolment_cap = 15


# --- Organisations, users, roles ----------------------------------------------------------------


class OrganisationFactory(DjangoModelFactory):
    """An organisation. Pass `territories=[...]` for the territories it serves: an organisation with
    no territory nor department serves no site unless `serves_whole_region=True` (OPCO, Région)."""

    class Meta:
        model = Organisation
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Agence France Travail {n}")
    kind = OrganisationKind.FRANCE_TRAVAIL
    is_active = True

    @factory.post_generation
    def territories(self, create, extracted, **kwargs):
        if create and extracted:
            self.territories.set(extracted)


class UserFactory(DjangoModelFactory):
    """A user who accepted the current confidentiality charter; `UserFactory(charter=False)` for one
    who has not. Password: `TEST_PASSWORD`."""

    class Meta:
        model = User

    class Params:
        charter = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Sequence(lambda n: f"Camille{n}")
    last_name = factory.Sequence(lambda n: f"Martin{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    password = factory.django.Password(TEST_PASSWORD)
    is_active = True
    accepted_charter_version = factory.Maybe("charter", settings.CONFIDENTIALITY_CHARTER_VERSION, "")


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organisation = factory.SubFactory(OrganisationFactory)
    can_be_referent = True
    is_active = True
    job_title = "Conseiller entreprises"


class SiteAnimatorFactory(DjangoModelFactory):
    class Meta:
        model = SiteAnimator

    user = factory.SubFactory(UserFactory)
    site = factory.SubFactory(PilotSiteFactory)
    role = AnimatorRole.CDET


class TerritoryObserverFactory(DjangoModelFactory):
    class Meta:
        model = TerritoryObserver

    user = factory.SubFactory(UserFactory)
    territory = factory.SubFactory(TerritoryFactory)


# --- Companies and cases ------------------------------------------------------------------------


class CompanyFactory(DjangoModelFactory):
    class Meta:
        model = Company

    siret = factory.Sequence(make_siret)
    name = factory.Sequence(lambda n: f"Chaudronnerie {n}")
    naf_code = "25.62B"
    size_band = SizeBand.B20_49
    address = "12 rue de l'Industrie"
    postcode = "44150"
    commune = "Ancenis-Saint-Géréon"
    territory = factory.SubFactory(TerritoryFactory)


def _referent_organisation(case) -> Organisation:
    """The organisation the case's referent acts for: their first referent membership, or a new
    organisation serving the site's territory (the membership is added after creation)."""
    referent = case.referent
    if referent.pk is not None:
        membership = (
            Membership.objects.filter(user=referent, can_be_referent=True, is_active=True)
            .select_related("organisation")
            .order_by("pk")
            .first()
        )
        if membership is not None:
            return membership.organisation
    return OrganisationFactory(territories=[case.site.territory])


def _now_if(condition):
    return factory.LazyAttribute(lambda o: timezone.now() if condition(o) else None)


class CaseFactory(DjangoModelFactory):
    """A case, "proposed" by default, whose referent holds a referent membership of
    `referent_organisation`.

    Params: `consent` (default: True for every state that requires it, False for "proposed";
    `CaseFactory(consent=True)` gives a proposed case ready to be enrolled).
    Traits: enrolled, diagnosed, active, follow_up, closed, refused, withdrawn.
    """

    class Meta:
        model = Case
        skip_postgeneration_save = True

    class Params:
        consent = factory.LazyAttribute(
            lambda o: o.state not in (CaseState.PROPOSED, CaseState.REFUSED, CaseState.WITHDRAWN)
        )
        enrolled = factory.Trait(state=CaseState.ENROLLED)
        diagnosed = factory.Trait(state=CaseState.DIAGNOSED)
        active = factory.Trait(state=CaseState.ACTIVE)
        follow_up = factory.Trait(state=CaseState.FOLLOW_UP)
        closed = factory.Trait(state=CaseState.CLOSED)
        refused = factory.Trait(state=CaseState.REFUSED)
        withdrawn = factory.Trait(state=CaseState.WITHDRAWN)

    state = CaseState.PROPOSED
    site = factory.SubFactory(PilotSiteFactory)
    company = factory.SubFactory(CompanyFactory, territory=factory.SelfAttribute("..site.territory"))
    referent = factory.SubFactory(UserFactory)
    referent_organisation = factory.LazyAttribute(_referent_organisation)
    created_by = factory.SelfAttribute("referent")
    summary = "Difficultés à recruter des soudeurs."

    consent_recorded_at = factory.Maybe("consent", factory.LazyFunction(timezone.now), None)
    consent_recorded_by = factory.Maybe("consent", factory.SelfAttribute("referent"), None)
    consent_text_version = factory.Maybe("consent", settings.COMPANY_CONSENT_TEXT_VERSION, "")

    outcome = factory.LazyAttribute(lambda o: CaseOutcome.NEEDS_MET if o.state == CaseState.CLOSED else "")
    decision_reason = factory.LazyAttribute(
        lambda o: "Motif de test." if o.state in (CaseState.REFUSED, CaseState.WITHDRAWN) else ""
    )
    enrolled_at = _now_if(lambda o: o.state in ENROLLED_CASE_STATES or o.state == CaseState.CLOSED)
    closed_at = _now_if(lambda o: o.state in FINAL_CASE_STATES)

    @factory.post_generation
    def referent_membership(self, create, extracted, **kwargs):
        if create:
            Membership.objects.get_or_create(
                user=self.referent,
                organisation=self.referent_organisation,
                defaults={"can_be_referent": True},
            )


class NeedFactory(DjangoModelFactory):
    class Meta:
        model = Need

    case = factory.SubFactory(CaseFactory, enrolled=True)
    category = ToolboxCategory.RECRUITMENT
    description = "Recruter deux soudeurs TIG."
    quantity = 2
    status = NeedStatus.OPEN
    created_by = factory.SelfAttribute("case.referent")


class ToolboxServiceFactory(DjangoModelFactory):
    class Meta:
        model = ToolboxService
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Job dating {n}")
    category = ToolboxCategory.RECRUITMENT
    provider = factory.SubFactory(OrganisationFactory)
    description = "Session de recrutement collective."
    response_time_days = 5
    is_active = True

    @factory.post_generation
    def territories(self, create, extracted, **kwargs):
        if create and extracted:
            self.territories.set(extracted)


class InterventionFactory(DjangoModelFactory):
    class Meta:
        model = Intervention

    case = factory.SubFactory(CaseFactory, active=True)
    kind = InterventionKind.MEETING
    planned_on = datetime.date(2026, 12, 1)
    owner = factory.SelfAttribute("case.referent")
    owner_organisation = factory.SelfAttribute("case.referent_organisation")
    notes = "Premier rendez-vous."
