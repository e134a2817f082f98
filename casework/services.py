"""Every write of the casework domain: one function per use case, an explicit acting user, one
transaction each. Views call these and nothing else to change data; notifications go through
notifications.notify() (rows and outbox e-mails in the same transaction, socket rings after commit).
"""

from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_fsm import can_proceed

from audit.chain import audited_atomic
from casework import mentions, rules
from casework.enums import OPEN_CASE_STATES, CaseOutcome, CaseState, InterventionKind, InterventionStatus
from casework.exceptions import BusinessRuleError, NotAllowedError, StaleStateError
from casework.models import (
    Case,
    CaseComment,
    CaseTransition,
    CharterAcceptance,
    Company,
    CompanyContact,
    Handover,
    HandoverStatus,
    Intervention,
    Membership,
    Need,
    Organisation,
    PilotSite,
    User,
    red_at_expression,
)
from casework.validators import normalise_naf, normalise_siret
from notifications.delivery import board_ring_after_commit
from notifications.services import notify

# Transitions a user may ask for through the interface, by method name on Case.
CASE_TRANSITIONS = ("enrol", "refuse", "diagnose", "activate", "follow_up", "close", "withdraw")


@dataclass
class CompanyData:
    siret: str
    name: str
    naf_code: str
    size_band: str
    commune: str
    territory_id: int
    address: str = ""
    postcode: str = ""
    contact_name: str = ""
    contact_email: str = ""
    contact_phone: str = ""


def _first_message(error: ValidationError) -> str:
    return " ".join(error.messages)


@audited_atomic
def charter_accept(*, actor: User, version: str | None = None) -> None:
    version = version or settings.CONFIDENTIALITY_CHARTER_VERSION
    if version != settings.CONFIDENTIALITY_CHARTER_VERSION:
        raise StaleStateError(_("The charter changed while you were reading it. Please read it again."))
    CharterAcceptance.objects.get_or_create(user=actor, version=version)
    User.objects.filter(pk=actor.pk).update(accepted_charter_version=version)
    actor.accepted_charter_version = version


def _add_contact(record: Company, company: CompanyData) -> None:
    contact = CompanyContact(
        company=record,
        full_name=company.contact_name.strip(),
        email=company.contact_email.strip(),
        phone=company.contact_phone.strip(),
    )
    validate_model(contact, exclude=["company"])
    contact.save()


def _open_case_message(case: Case) -> str:
    return _(
        "%(company)s is already followed on the site %(site)s. Its referent is %(referent)s "
        "(%(organisation)s): contact them to work together."
    ) % {
        "company": case.company.name,
        "site": case.site.name,
        "referent": case.referent.get_full_name() or case.referent.username,
        "organisation": case.referent_organisation.name,
    }


def _existing_open_case(siret: str, site: PilotSite) -> Case | None:
    return (
        Case.objects.filter(company__siret=siret, site=site, state__in=OPEN_CASE_STATES)
        .select_related("company", "site", "referent", "referent_organisation")
        .first()
    )


def case_propose(
    *,
    actor: User,
    site: PilotSite,
    referent_organisation: Organisation,
    company: CompanyData,
    consent: bool,
    summary: str = "",
) -> Case:
    """A referent proposes a company for enrolment on a pilot site ("first met" rule: the adviser
    who first meets the company becomes its referent, unless someone already is)."""
    roles = rules.user_roles(actor)
    if referent_organisation.pk not in roles.referent_organisation_ids:
        raise NotAllowedError(_("You cannot act as referent for %(org)s.") % {"org": referent_organisation})
    if not PilotSite.objects.filter(rules.sites_served_by_q([referent_organisation.pk]), pk=site.pk).exists():
        raise NotAllowedError(
            _("%(org)s does not serve the site %(site)s.") % {"org": referent_organisation, "site": site}
        )
    if timezone.localdate() > site.ends_on:
        raise BusinessRuleError(
            _("The experiment on %(site)s ended on %(end)s: no new company can be proposed.")
            % {"site": site, "end": date_format(site.ends_on, "SHORT_DATE_FORMAT")}
        )
    try:
        siret = normalise_siret(company.siret)
        naf = normalise_naf(company.naf_code)
    except ValidationError as error:
        raise BusinessRuleError(_first_message(error)) from None

    try:
        with audited_atomic():
            existing = _existing_open_case(siret, site)
            if existing:
                raise BusinessRuleError(_open_case_message(existing))
            record = Company.objects.filter(siret=siret).first()
            if record is None:
                record = Company(
                    siret=siret,
                    name=company.name.strip(),
                    naf_code=naf,
                    size_band=company.size_band,
                    address=company.address.strip(),
                    postcode=company.postcode.strip(),
                    commune=company.commune.strip(),
                    territory_id=company.territory_id,
                    created_by=actor,
                )
                try:
                    record.full_clean()
                except ValidationError as error:
                    raise BusinessRuleError(_first_message(error)) from None
                record.save()
                if company.contact_name.strip():
                    _add_contact(record, company)
            elif (
                company.contact_name.strip()
                and not record.contacts.filter(full_name__iexact=company.contact_name.strip()).exists()
            ):
                # A known company: its register entry is kept, the contact the adviser met is added.
                _add_contact(record, company)
            # A company (new or already known) is enrolled on a site of its own department.
            if record.territory.department_id != site.department_id:
                raise BusinessRuleError(
                    _(
                        "This company is registered in another department (%(department)s): it cannot "
                        "be proposed on the site %(site)s."
                    )
                    % {"department": record.territory.department.name, "site": site}
                )
            now = timezone.now()
            case = Case(
                company=record,
                site=site,
                referent=actor,
                referent_organisation=referent_organisation,
                summary=summary.strip(),
                created_by=actor,
                last_activity_at=now,
            )
            if consent:
                case.consent_recorded_at = now
                case.consent_recorded_by = actor
                case.consent_text_version = settings.COMPANY_CONSENT_TEXT_VERSION
            case.save()
            CaseTransition.objects.create(
                case=case, name="propose", source="", target=CaseState.PROPOSED, actor=actor, at=now
            )
            board_ring_after_commit(case.site_id, case.public_id)
            notify(
                event_type="enrolment_proposed",
                recipients=_site_animators(case),
                message=gettext_lazy("%(actor)s proposes %(company)s for the site %(site)s."),
                params={"actor": actor, "company": record.name, "site": site.name},
                actor=actor,
                case=case,
            )
            return case
    except IntegrityError:
        # Another adviser proposed the same company at the same moment: the constraints held.
        existing = _existing_open_case(siret, site)
        if existing:
            raise BusinessRuleError(_open_case_message(existing)) from None
        raise BusinessRuleError(
            _("This company was just created by someone else. Please try again.")
        ) from None


def record_activity(case: Case, now=None) -> None:
    """Something happened on the case: date it (the board's "days since the last activity") and,
    after commit, ring the board of its pilot site."""
    now = now or timezone.now()
    Case.objects.filter(pk=case.pk).update(last_activity_at=now, red_at=red_at_expression(now))
    board_ring_after_commit(case.site_id, case.public_id)


def _locked_case(case: Case, expected_state: str | None) -> Case:
    # of=("self",): lock the case row only, not its site and company (joined for reading).
    locked = Case.objects.select_for_update(of=("self",)).select_related("site", "company").get(pk=case.pk)
    if expected_state is not None and locked.state != expected_state:
        raise StaleStateError(
            _("This case changed in the meantime (it is now “%(state)s”). Reload the page and try again.")
            % {"state": locked.get_state_display()}
        )
    return locked


@audited_atomic
def case_record_consent(*, actor: User, case: Case) -> Case:
    case = _locked_case(case, None)
    if not rules.can_record_consent(case, actor):
        raise NotAllowedError(_("You cannot record the consent of this company."))
    if case.has_consent:
        raise StaleStateError(_("The consent of this company is already recorded."))
    now = timezone.now()
    case.consent_recorded_at = now
    case.consent_recorded_by = actor
    case.consent_text_version = settings.COMPANY_CONSENT_TEXT_VERSION
    case.last_activity_at = now
    case.save(
        update_fields=[
            "consent_recorded_at",
            "consent_recorded_by",
            "consent_text_version",
            "last_activity_at",
        ]
    )
    board_ring_after_commit(case.site_id, case.public_id)
    return case


@audited_atomic
def case_transition(
    *, actor: User, case: Case, name: str, expected_state: str, reason: str = "", outcome: str = ""
) -> Case:
    """Apply one state transition under the row lock, check rights and conditions again on the
    server, and write the transition log in the same transaction."""
    if name not in CASE_TRANSITIONS:
        raise NotAllowedError(_("Unknown action."))
    if name == "enrol":
        # Serialise enrolments of one site so that two animators cannot both take the last place.
        PilotSite.objects.select_for_update().filter(pk=case.site_id).first()
    case = _locked_case(case, expected_state)
    method = getattr(case, name)
    meta = method._django_fsm.get_transition(case.state)
    if meta is None:
        raise StaleStateError(
            _("This action is not possible while the case is “%(state)s”.")
            % {"state": case.get_state_display()}
        )
    if not method._django_fsm.has_transition_perm(case, case.state, actor):
        raise NotAllowedError(_("You are not allowed to do this on this case."))
    if not can_proceed(method):
        raise BusinessRuleError(rules.transition_blocker(case, meta) or _("This action is not possible now."))
    reason = (reason or "").strip()
    if meta.custom.get("reason") and not reason:
        raise BusinessRuleError(_("Please give a reason."))
    if meta.custom.get("outcome"):
        if outcome not in CaseOutcome.values:
            raise BusinessRuleError(_("Please choose the outcome of the support."))
        case.outcome = outcome
    source = case.state
    method()
    now = timezone.now()
    if meta.custom.get("reason"):
        case.decision_reason = reason
    case.last_activity_at = now
    case.save()
    CaseTransition.objects.create(
        case=case, name=name, source=source, target=case.state, actor=actor, at=now, comment=reason
    )
    board_ring_after_commit(case.site_id, case.public_id)
    if name in ("enrol", "refuse"):
        notify(
            event_type="enrolment_decided",
            recipients=[case.referent],
            message=gettext_lazy("The animators enrolled %(company)s in the experiment.")
            if name == "enrol"
            else gettext_lazy("The animators refused the enrolment of %(company)s: %(reason)s"),
            params={"company": case.company.name, "reason": reason},
            actor=actor,
            case=case,
        )
    return case


def validate_model(instance, *, exclude=()) -> None:
    """Run the model's validation; its first messages become a BusinessRuleError."""
    try:
        instance.full_clean(exclude=list(exclude))
    except ValidationError as error:
        raise BusinessRuleError(_first_message(error)) from None


def _check_need_values(need: Need) -> None:
    validate_model(need, exclude=["case", "created_by"])


@audited_atomic
def need_create(
    *,
    actor: User,
    case: Case,
    category: str,
    description: str,
    quantity: int | None = None,
    deadline: date | None = None,
    submission_id=None,
) -> Need:
    case = _locked_case(case, None)
    if not rules.can_edit_needs(case, actor):
        raise NotAllowedError(_("You cannot record needs on this case."))
    if submission_id is not None and Need.objects.filter(submission_id=submission_id).exists():
        raise StaleStateError(_("This need is already recorded (the form was sent twice)."))
    need = Need(
        case=case,
        category=category,
        description=(description or "").strip(),
        quantity=quantity,
        deadline=deadline,
        created_by=actor,
        submission_id=submission_id,
    )
    _check_need_values(need)
    need.save()
    record_activity(case)
    return need


NEED_EDITABLE_FIELDS = ("category", "description", "quantity", "deadline", "status")


@audited_atomic
def need_update(*, actor: User, need: Need, **values) -> Need:
    unknown = set(values) - set(NEED_EDITABLE_FIELDS)
    if unknown:
        raise BusinessRuleError(_("Unknown fields: %(fields)s") % {"fields": ", ".join(sorted(unknown))})
    case = _locked_case(need.case, None)
    if not rules.can_edit_needs(case, actor):
        raise NotAllowedError(_("You cannot change the needs of this case."))
    need = Need.objects.select_for_update().get(pk=need.pk)
    for field, value in values.items():
        setattr(need, field, value.strip() if isinstance(value, str) else value)
    _check_need_values(need)
    need.save(update_fields=[*values.keys(), "updated_at"])
    record_activity(case)
    return need


# --- Comments and @mentions ------------------------------------------------------------------------


def _mentioned_users(case: Case, body: str) -> list[User]:
    """The people `body` mentions, each of whom can see the case now; any handle that is unknown,
    ambiguous or names someone who cannot see the case refuses the whole comment."""
    handles = mentions.handles(body)
    if len(handles) > mentions.MAX_MENTIONS:
        raise BusinessRuleError(
            _("Please mention at most %(count)d people in one comment.") % {"count": mentions.MAX_MENTIONS}
        )
    users = []
    for handle in handles:
        found = list(User.objects.filter(mentions.handle_q(handle))[:2])
        if len(found) > 1:
            raise BusinessRuleError(
                _("Several people are known as @%(handle)s: write their whole e-mail address after the @.")
                % {"handle": handle}
            )
        # Unknown, or unable to see the case: one answer, which tells nothing about the accounts.
        if not found or not rules.can_see_case(case, found[0]):
            raise BusinessRuleError(
                _(
                    "@%(handle)s cannot be mentioned here: only the people who can see this case can "
                    "be (its referent, the animators of its site and the partners working on its "
                    "requests). Check the spelling or pick a name from the list."
                )
                % {"handle": handle}
            )
        users.append(found[0])
    return users


@audited_atomic
def comment_add(*, actor: User, case: Case, body: str, submission_id=None) -> CaseComment:
    """Add a comment to the case; the people it @mentions are told, and so is the referent."""
    case = _locked_case(case, None)
    # Everyone who can see the case takes part in its conversation (a partner of one of its
    # requests too); the service re-reads that right, the page is only a convenience.
    if not rules.can_see_case(case, actor):
        raise NotAllowedError(_("You cannot comment on this case."))
    body = (body or "").strip()
    if not body:
        raise BusinessRuleError(_("Please write your comment."))
    if len(body) > 5000:
        raise BusinessRuleError(_("Please keep the comment under 5,000 characters."))
    if submission_id is not None and CaseComment.objects.filter(submission_id=submission_id).exists():
        raise StaleStateError(_("This comment is already posted (the form was sent twice)."))
    mentioned = _mentioned_users(case, body)
    comment = CaseComment.objects.create(case=case, author=actor, body=body, submission_id=submission_id)
    comment.mentions.set(mentioned)
    params = {"actor": actor, "company": case.company.name}
    notify(
        event_type="case_mention",
        recipients=mentioned,
        message=gettext_lazy("%(actor)s mentioned you in a comment on the case %(company)s."),
        params=params,
        actor=actor,
        case=case,
    )
    if case.referent not in mentioned:
        notify(
            event_type="case_comment",
            recipients=[case.referent],
            message=gettext_lazy("%(actor)s commented on the case %(company)s."),
            params=params,
            actor=actor,
            case=case,
        )
    record_activity(case)
    return comment


# --- Referent handover ---------------------------------------------------------------------------


def _site_animators(case: Case) -> list[User]:
    return [animator.user for animator in case.site.animators.select_related("user")]


def _check_can_take(case: Case, user: User, organisation: Organisation) -> None:
    """`user` may become the referent of `case` acting for `organisation`."""
    if not user.is_active:
        raise BusinessRuleError(_("This account is not active."))
    if not Membership.objects.filter(
        user=user,
        organisation=organisation,
        is_active=True,
        can_be_referent=True,
        organisation__is_active=True,
    ).exists():
        raise BusinessRuleError(
            _("%(user)s cannot act as referent for %(org)s.") % {"user": user, "org": organisation}
        )
    if not PilotSite.objects.filter(rules.sites_served_by_q([organisation.pk]), pk=case.site_id).exists():
        raise BusinessRuleError(
            _("%(org)s does not serve the site %(site)s.") % {"org": organisation, "site": case.site}
        )


@audited_atomic
def handover_propose(
    *, actor: User, case: Case, to_user: User, to_organisation: Organisation, message: str = ""
) -> Handover:
    """The referent, or an animator of the site, proposes a new referent; nothing changes until
    the new referent accepts."""
    case = _locked_case(case, None)
    if not rules.is_referent_or_animator(case, actor):
        raise NotAllowedError(_("Only the referent or the animators of the site propose a new referent."))
    if not case.is_open:
        raise BusinessRuleError(_("This case is finished: its referent does not change any more."))
    if to_user.pk == case.referent_id:
        raise BusinessRuleError(_("This person is already the referent of the case."))
    _check_can_take(case, to_user, to_organisation)
    pending = case.handovers.filter(status=HandoverStatus.PROPOSED).select_related("to_user").first()
    if pending is not None:
        raise StaleStateError(
            _("A handover to %(user)s is already waiting for an answer.") % {"user": pending.to_user}
        )
    handover = Handover.objects.create(
        case=case,
        from_user=case.referent,
        to_user=to_user,
        to_organisation=to_organisation,
        proposed_by=actor,
        message=(message or "").strip(),
    )
    notify(
        event_type="handover_proposed",
        recipients=[to_user],
        message=gettext_lazy("%(actor)s proposes that you become the referent of %(company)s."),
        params={"actor": actor, "company": case.company.name},
        actor=actor,
        case=case,
    )
    return handover


def _pending_handover(handover: Handover) -> tuple[Handover, Case]:
    case = _locked_case(handover.case, None)
    handover = Handover.objects.select_for_update().select_related("to_user", "from_user").get(pk=handover.pk)
    if handover.status != HandoverStatus.PROPOSED:
        raise StaleStateError(_("This handover was already answered or cancelled."))
    return handover, case


@audited_atomic
def handover_accept(*, actor: User, handover: Handover) -> Case:
    handover, case = _pending_handover(handover)
    if actor.pk != handover.to_user_id:
        raise NotAllowedError(_("Only the proposed referent can accept."))
    if not case.is_open:
        raise BusinessRuleError(_("This case is finished: its referent does not change any more."))
    _check_can_take(case, actor, handover.to_organisation)
    now = timezone.now()
    previous = case.referent
    case.referent = actor
    case.referent_organisation = handover.to_organisation
    case.last_activity_at = now
    case.save(update_fields=["referent", "referent_organisation", "last_activity_at"])
    board_ring_after_commit(case.site_id, case.public_id)
    handover.status = HandoverStatus.ACCEPTED
    handover.decided_at = now
    handover.save(update_fields=["status", "decided_at"])
    CaseTransition.objects.create(
        case=case,
        name="handover",
        source=case.state,
        target=case.state,
        actor=actor,
        at=now,
        comment=_("Referent: %(old)s → %(new)s (%(org)s)")
        % {"old": previous, "new": actor, "org": handover.to_organisation},
    )
    notify(
        event_type="handover_decided",
        recipients=[previous, handover.proposed_by, *_site_animators(case)],
        message=gettext_lazy("%(new)s is now the referent of %(company)s."),
        params={"new": actor, "company": case.company.name},
        actor=actor,
        case=case,
    )
    return case


@audited_atomic
def handover_decline(*, actor: User, handover: Handover, reason: str = "") -> Handover:
    handover, case = _pending_handover(handover)
    if actor.pk != handover.to_user_id:
        raise NotAllowedError(_("Only the proposed referent can decline."))
    handover.status = HandoverStatus.DECLINED
    handover.decided_at = timezone.now()
    handover.message = "\n".join(filter(None, [handover.message, (reason or "").strip()]))
    handover.save(update_fields=["status", "decided_at", "message"])
    notify(
        event_type="handover_decided",
        recipients=[handover.from_user, handover.proposed_by],
        message=gettext_lazy("%(user)s declined to become the referent of %(company)s."),
        params={"user": actor, "company": case.company.name},
        actor=actor,
        case=case,
    )
    return handover


@audited_atomic
def handover_cancel(*, actor: User, handover: Handover) -> Handover:
    handover, case = _pending_handover(handover)
    if actor.pk != handover.proposed_by_id and not rules.is_referent_or_animator(case, actor):
        raise NotAllowedError(
            _("Only who proposed the handover, the referent or the animators of the site can cancel it.")
        )
    handover.status = HandoverStatus.CANCELLED
    handover.decided_at = timezone.now()
    handover.save(update_fields=["status", "decided_at"])
    return handover


# --- Reminders ------------------------------------------------------------------------------------


@audited_atomic
def remind_interventions_due(*, today: date | None = None) -> int:
    """Tell the owner and the referent of each intervention planned for tomorrow, once. Run by the
    worker loop (no acting user: the platform)."""
    today = today or timezone.localdate()
    due = (
        Intervention.objects.select_for_update(of=("self",))
        .filter(
            status=InterventionStatus.PLANNED,
            planned_on=today + timedelta(days=1),
            reminder_sent_at__isnull=True,
        )
        .select_related("case__company", "case__referent", "owner")
    )
    count = 0
    for intervention in due:
        notify(
            event_type="intervention_due",
            recipients=[intervention.owner, intervention.case.referent],
            message=gettext_lazy("Reminder: %(kind)s planned tomorrow with %(company)s."),
            params={
                "kind": InterventionKind(intervention.kind).label,
                "company": intervention.case.company.name,
            },
            case=intervention.case,
            service_request=intervention.service_request,
        )
        Intervention.objects.filter(pk=intervention.pk).update(reminder_sent_at=timezone.now())
        count += 1
    return count
