"""Retention of closed cases: once a case has been closed (closed, refused or withdrawn) for longer
than CASE_RETENTION_DAYS, its free text is wiped, its company's contacts too when none of the
company's cases needs them any more, and the audit entries that kept that text are redacted. What
the statistics count stays: states, outcomes, categories, statuses, dates, quantities, results,
organisations, the company's identity (a legal person) and every row.

Packages built on casework (workflows) wipe their own free text through `register_case_wiper`:
casework does not import them.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from auditlog.context import disable_auditlog
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from audit import chain as audit_chain
from audit.actors import SYSTEM_USERNAME
from audit.chain import audited_atomic
from audit.models import AuditEntry, Chain
from casework.enums import FINAL_CASE_STATES
from casework.exceptions import BusinessRuleError, NotAllowedError
from casework.models import (
    Case,
    CaseComment,
    CaseTransition,
    CompanyContact,
    Handover,
    Intervention,
    Need,
    User,
)

# What replaces a wiped text (the same marker as the audit entries' redaction).
MARKER = audit_chain.REDACTED

# Each wiper is `f(case, marker) -> {model: [pk, ...]}`: it wipes the free text of its own rows of
# the case (with QuerySet.update, so that auditlog does not copy the text into a new entry) and
# returns the rows whose audit entries must be redacted.
_CASE_WIPERS = []


def register_case_wiper(wiper) -> None:
    if wiper not in _CASE_WIPERS:
        _CASE_WIPERS.append(wiper)


def wipe_text(queryset: QuerySet, *fields: str) -> int:
    """Replace each non-empty `fields` of the rows of `queryset` by the marker (an empty text stays
    empty: "no reason given" stays countable). Returns the number of values replaced."""
    wiped = 0
    for name in fields:
        wiped += queryset.exclude(**{name: ""}).exclude(**{name: MARKER}).update(**{name: MARKER})
    return wiped


def retention_cutoff(*, now: datetime | None = None, days: int | None = None) -> datetime:
    days = settings.CASE_RETENTION_DAYS if days is None else days
    return (now or timezone.now()) - timedelta(days=days)


def anonymisable_cases(*, now: datetime | None = None, days: int | None = None) -> QuerySet:
    """Cases in a final state (closed, refused, withdrawn) since before the retention cutoff, not
    anonymised yet. Oldest closure first."""
    return Case.objects.filter(
        state__in=FINAL_CASE_STATES,
        closed_at__lt=retention_cutoff(now=now, days=days),
        anonymised_at__isnull=True,
    ).order_by("closed_at", "pk")


@dataclass
class Anonymisation:
    case_id: int
    wiped: Counter = field(default_factory=Counter)  # values replaced, per model label
    contacts_deleted: int = 0
    entries_redacted: int = 0
    entries_left: list[int] = field(default_factory=list)  # tampered entries, left for audit_verify


def _may_anonymise(actor: User) -> bool:
    return actor.username == SYSTEM_USERNAME or actor.is_platform_admin


def _contacts_may_go(case: Case, cutoff: datetime) -> bool:
    """The company's contacts go with its last case: no case of the company is open, and every
    other case is anonymised already or anonymisable now."""
    others = Case.objects.filter(company_id=case.company_id).exclude(pk=case.pk)
    waiting = others.filter(anonymised_at__isnull=True).exclude(
        state__in=FINAL_CASE_STATES, closed_at__lt=cutoff
    )
    return not waiting.exists()


@audited_atomic
def anonymise_case(
    *, actor: User, case: Case, now: datetime | None = None, days: int | None = None
) -> Anonymisation:
    """Wipe the free text of `case` and of its children, its company's contacts when they are no
    longer needed, and redact the audit entries of those rows; then record one audit entry (by
    `actor`) saying the case was anonymised and how much. One transaction, the chain's lock first,
    then the case row."""
    if not _may_anonymise(actor):
        raise NotAllowedError(_("Only the platform or an administrator can anonymise a case."))
    now = now or timezone.now()
    cutoff = retention_cutoff(now=now, days=days)
    case = Case.objects.select_for_update().get(pk=case.pk)
    if (
        not (case.state in FINAL_CASE_STATES and case.closed_at and case.closed_at < cutoff)
        or case.anonymised_at
    ):
        raise BusinessRuleError(
            _(
                "This case cannot be anonymised: it has not been over for the whole retention period, "
                "or it is anonymised already."
            )
        )

    result = Anonymisation(case_id=case.pk)
    this = Case.objects.filter(pk=case.pk)
    result.wiped["case"] = wipe_text(this, "summary", "decision_reason")
    result.wiped["need"] = wipe_text(Need.objects.filter(case=case), "description")
    result.wiped["comment"] = wipe_text(CaseComment.objects.filter(case=case), "body")
    result.wiped["intervention"] = wipe_text(Intervention.objects.filter(case=case), "notes", "outcome")
    result.wiped["transition"] = wipe_text(CaseTransition.objects.filter(case=case), "comment")
    result.wiped["handover"] = wipe_text(Handover.objects.filter(case=case), "message")
    # Notifications quote reasons and names; the rows stay (the recipients' inbox), not the text.
    from notifications.models import Notification

    result.wiped["notification"] = wipe_text(Notification.objects.filter(case=case), "text")

    redact = {
        Case: [case.pk],
        Need: list(Need.objects.filter(case=case).values_list("pk", flat=True)),
        CaseComment: list(CaseComment.objects.filter(case=case).values_list("pk", flat=True)),
        Intervention: list(Intervention.objects.filter(case=case).values_list("pk", flat=True)),
        Handover: list(Handover.objects.filter(case=case).values_list("pk", flat=True)),
    }
    for wiper in _CASE_WIPERS:
        for model, pks in wiper(case, MARKER).items():
            redact.setdefault(model, []).extend(pks)

    if _contacts_may_go(case, cutoff):
        contacts = CompanyContact.objects.filter(company_id=case.company_id)
        redact[CompanyContact] = list(contacts.values_list("pk", flat=True))
        # No auditlog entry per contact: its DELETE entry would copy the name and the e-mail.
        with disable_auditlog():
            result.contacts_deleted, _per_model = contacts.delete()

    query = Q(pk__in=[])
    for model, pks in redact.items():
        if pks:
            content_type = ContentType.objects.get_for_model(model)
            query |= Q(content_type=content_type, object_pk__in=[str(pk) for pk in pks])
    result.entries_redacted, result.entries_left = audit_chain.redact(
        AuditEntry.objects.filter(query, chain=Chain.CHANGE), at=now
    )

    this.update(anonymised_at=now)
    AuditEntry.objects.log_create(
        case,
        force_log=True,
        action=AuditEntry.Action.UPDATE,
        actor=actor,
        actor_email=actor.email or None,
        changes={"anonymised_at": [None, now.isoformat()]},
        additional_data={
            "anonymisation": {
                "wiped": {name: n for name, n in sorted(result.wiped.items()) if n},
                "contacts_deleted": result.contacts_deleted,
                "entries_redacted": result.entries_redacted,
            }
        },
    )
    return result
