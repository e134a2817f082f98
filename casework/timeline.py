"""The case's timeline: one chronological list, most recent first, of what happened on a case —
state changes, the company's consent, needs and their edits, requests and each of their steps,
interventions, comments, escalations, referent handovers — each with its date, its actor and a
French sentence. It is read a page at a time: the case page shows the latest TIMELINE_PAGE items,
the history page (« Voir les événements plus anciens ») HISTORY_PAGE items at a time, each page
from where the previous one ended (`Position`), never by an offset.

Each *source* is a function `source(case, viewer, limit, before) -> Batch` that reads one kind of
record in a fixed number of queries (never one per row): the latest `limit` rows older than
`before` (`Before.q` writes that condition on the source's date and id), and their items. casework's
own sources are below; other apps add theirs through `register_source` (workflows does it in
`WorkflowsConfig.ready()`), so casework imports nothing from them. `case_timeline` merges the
sources' batches, sorts and keeps the latest items. A source that read its whole `limit` says
where its rows stop (`Batch.floor`): the merge keeps nothing older than the highest floor, so a
source whose rows give no item (an audit entry that changes no listed field) never lets an item
of its own be skipped; it is on the next page.

The case must come from the viewer's scoped queryset (`selectors.case_get`): the sources read
only rows of that case. What a source shows is what the case page already shows to any of its
readers, except the audit trail's field changes (former values): those go to the people who
answer for the case only — its referent, the animators of its site, platform administrators."""

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime

from django.db.models import Q
from django.utils import formats
from django.utils.text import capfirst, format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from casework import rules
from casework.models import Case, CaseComment, CaseTransition, Handover, HandoverStatus, Need, User

# Items on the case page, and on each page of its history.
TIMELINE_PAGE = 30
HISTORY_PAGE = 50
EXCERPT_LENGTH = 280
SHORT_VALUE_LENGTH = 80

# The name shown for what the platform did by itself (steps with no actor); the audit trail's own
# system account (audit.actors) carries the same name.
SYSTEM_ACTOR_NAME = _("Platform (automatic)")

# kind -> (DSFR icon, badge)
KINDS = {
    "case": ("fr-icon-flag-line", _("Case")),
    "decision": ("fr-icon-scales-3-line", _("Decision")),
    "need": ("fr-icon-todo-line", _("Need")),
    "change": ("fr-icon-edit-line", _("Change")),
    "request": ("fr-icon-send-plane-line", _("Request")),
    "intervention": ("fr-icon-calendar-line", _("Intervention")),
    "comment": ("fr-icon-chat-3-line", _("Comment")),
}


@dataclass(frozen=True)
class Change:
    """One field of an audited change. `old` and `new` are None for a long text: only its name is
    shown (« modifié »), never its content."""

    label: str
    old: str | None = None
    new: str | None = None

    @property
    def with_values(self) -> bool:
        return self.old is not None or self.new is not None


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str
    text: str
    actor: str
    automatic: bool = False
    organisation: str = ""
    details: str = ""
    changes: tuple[Change, ...] = ()
    url: str = ""
    # Tie-break between items of the same instant: the row's id (a later row, a later step).
    order: int = 0
    # Between items of the same instant and id (rows of two tables): the source's rank (set by
    # `case_timeline`).
    rank: int = 0
    # The whole text when `details` is an excerpt of it (a long comment): the history page shows it.
    full_details: str = ""

    @property
    def icon(self) -> str:
        return KINDS[self.kind][0]

    @property
    def badge(self) -> str:
        return str(KINDS[self.kind][1])

    @property
    def key(self) -> tuple:
        """The item's place in the order, the latest being the greatest."""
        return (self.at, self.order, self.rank)


@dataclass(frozen=True)
class Position:
    """Where a page of the timeline ended: the key of its last (oldest) item."""

    at: datetime
    order: int
    rank: int

    def cursor(self) -> str:
        from casework.pagination import encode_cursor

        return encode_cursor([self.at, self.order, self.rank])

    @classmethod
    def from_cursor(cls, text: str) -> "Position":
        """ValueError when `text` is not a position."""
        from casework.pagination import decode_cursor

        at, order, rank = decode_cursor(text, 3)
        if not isinstance(at, datetime) or type(order) is not int or type(rank) is not int:
            raise ValueError("not a position")
        return cls(at, order, rank)


@dataclass(frozen=True)
class Before:
    """The older side of a position, for the source of rank `rank` (all of it when `position` is
    None): what comes after the position in the timeline's order (date, id, rank — descending)."""

    position: Position | None = None
    rank: int = 0

    def q(self, at: str, pk: str = "pk") -> Q:
        """The rows of this source older than the position, on their date `at` and id `pk`."""
        if self.position is None:
            return Q()
        same_row_lookup = "lte" if self.rank < self.position.rank else "lt"
        return Q(**{f"{at}__lt": self.position.at}) | Q(
            **{at: self.position.at, f"{pk}__{same_row_lookup}": self.position.order}
        )

    def admits(self, at: datetime, order: int = 0) -> bool:
        return self.position is None or (at, order, self.rank) < (
            self.position.at,
            self.position.order,
            self.position.rank,
        )


@dataclass(frozen=True)
class Batch:
    """What a source read: its items, and where its rows stop (`floor`: the date and id of the
    oldest row read) when it read its whole `limit` — older rows may remain. None: nothing older."""

    items: list
    floor: tuple | None = None


def batch(rows, limit: int, at: str, make) -> Batch:
    """The batch of `rows` (a source's query, at most `limit` rows, latest first): `make(row)` gives
    the row's items (a list)."""
    rows = list(rows)
    items = [item for row in rows for item in make(row)]
    floor = (getattr(rows[-1], at), rows[-1].pk) if len(rows) >= limit else None
    return Batch(items, floor)


@dataclass(frozen=True)
class Timeline:
    items: list[TimelineItem]
    # There are older items: `older` is where the next page starts.
    older: Position | None = None

    @property
    def older_cursor(self) -> str:
        return self.older.cursor() if self.older else ""


Source = Callable[[Case, User, int, Before], Batch]
_registered: list[Source] = []


def register_source(source: Source) -> Source:
    """Add a source of timeline items (once, at start-up: an AppConfig's `ready()`)."""
    if source not in _registered:
        _registered.append(source)
    return source


def actor_name(user) -> str:
    """The name shown for an actor; the platform's name when nobody acted."""
    if user is None:
        return str(SYSTEM_ACTOR_NAME)
    return user.get_full_name() or user.username


def is_system(user) -> bool:
    from audit.actors import SYSTEM_USERNAME

    return user is None or user.username == SYSTEM_USERNAME


def excerpt(text: str, length: int = EXCERPT_LENGTH) -> str:
    text = (text or "").strip()
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def case_timeline(
    case: Case, viewer: User, limit: int = TIMELINE_PAGE, before: Position | None = None
) -> Timeline:
    """The latest `limit` items older than `before` (from the latest when None), most recent
    first, and where the next page starts if there are older items. Each source reads at most
    `limit + 1` rows: more than `limit` items in all, or a source with rows left, means more."""
    items: list[TimelineItem] = []
    floors = []
    for rank, source in enumerate((*CASEWORK_SOURCES, *_registered)):
        found = source(case, viewer, limit + 1, Before(before, rank))
        items.extend(replace(item, rank=rank) for item in found.items)
        if found.floor is not None:
            floors.append((*found.floor, rank))
    if floors:
        # Past a source's floor, that source may have rows it did not read: stop there.
        highest = max(floors)
        items = [item for item in items if (item.at, item.order) >= highest[:2]]
    items.sort(key=lambda item: item.key, reverse=True)
    shown = items[:limit]
    older = None
    if shown and (len(items) > limit or floors):
        older = Position(shown[-1].at, shown[-1].order, shown[-1].rank)
    elif floors:  # rows read, none of them an item (changes of unlisted fields): go on past them
        older = Position(*max(floors))
    return Timeline(items=shown, older=older)


# --- casework's sources ------------------------------------------------------------------------------

TRANSITION_TEXTS = {
    "propose": _("Company proposed for the experiment"),
    "enrol": _("Enrolment accepted"),
    "refuse": _("Enrolment refused"),
    "diagnose": _("Needs diagnosis confirmed"),
    "activate": _("Support started"),
    "follow_up": _("Case moved to follow-up"),
    "close": _("Case closed"),
    "withdraw": _("Case withdrawn"),
    "handover": _("Referent handover"),
}
DECISION_TRANSITIONS = ("enrol", "refuse", "handover")


def transitions(case: Case, viewer: User, limit: int, before: Before) -> Batch:
    """State changes (proposal, enrolment decision, diagnosis… closing) and accepted handovers,
    with their reason or comment: one query."""
    rows = (
        CaseTransition.objects.filter(before.q("at"), case=case)
        .select_related("actor")
        .order_by("-at", "-id")[:limit]
    )

    def make(step):
        text = TRANSITION_TEXTS.get(step.name)
        if text is None:
            text = format_lazy(_("Case moved to “{state}”"), state=step.get_target_display())
        return [
            TimelineItem(
                at=step.at,
                kind="decision" if step.name in DECISION_TRANSITIONS else "case",
                text=str(text),
                actor=actor_name(step.actor),
                automatic=is_system(step.actor),
                details=step.comment,
                order=step.pk,
            )
        ]

    return batch(rows, limit, "at", make)


def consent(case: Case, viewer: User, limit: int, before: Before) -> Batch:
    """The company's consent, as the page shows it (no query: read with the case)."""
    if case.consent_recorded_at is None or not before.admits(case.consent_recorded_at):
        return Batch([])
    return Batch(
        [
            TimelineItem(
                at=case.consent_recorded_at,
                kind="case",
                text=gettext("Company's consent recorded (text version %(version)s)")
                % {"version": case.consent_text_version or "—"},
                actor=actor_name(case.consent_recorded_by),
                automatic=is_system(case.consent_recorded_by),
            )
        ]
    )


def needs(case: Case, viewer: User, limit: int, before: Before) -> Batch:
    """Each need's recording: one query."""
    rows = (
        Need.objects.filter(before.q("created_at"), case=case)
        .select_related("created_by")
        .order_by("-created_at", "-id")[:limit]
    )
    return batch(
        rows,
        limit,
        "created_at",
        lambda need: [
            TimelineItem(
                at=need.created_at,
                kind="need",
                text=gettext("Need recorded: %(category)s") % {"category": need.get_category_display()},
                actor=actor_name(need.created_by),
                automatic=is_system(need.created_by),
                order=need.pk,
            )
        ],
    )


def comments(case: Case, viewer: User, limit: int, before: Before) -> Batch:
    """Comments, an excerpt and whom they mention: two queries, whether there are comments or not
    (the mentions of the same latest comments, read by a subquery). The link leads to the whole
    comment in the « Commentaires » section; the whole text rides along for the history page."""
    latest = CaseComment.objects.filter(before.q("created_at"), case=case).order_by("-created_at", "-id")
    rows = list(latest.select_related("author")[:limit])
    mentioned: dict[int, list[str]] = {}
    for link in (
        CaseComment.mentions.through.objects.filter(casecomment_id__in=latest.values("pk")[:limit])
        .select_related("user")
        .order_by("user__last_name", "user__first_name", "user_id")
    ):
        mentioned.setdefault(link.casecomment_id, []).append(actor_name(link.user))

    def make(comment):
        details, full = excerpt(comment.body), comment.body.strip()
        if comment.pk in mentioned:
            mentions = "\n" + gettext("Mentions: %(names)s") % {"names": ", ".join(mentioned[comment.pk])}
            details, full = details + mentions, full + mentions
        return [
            TimelineItem(
                at=comment.created_at,
                kind="comment",
                text=gettext("Comment"),
                actor=actor_name(comment.author),
                automatic=is_system(comment.author),
                details=details,
                full_details=full if full != details else "",
                url=f"#commentaire-{comment.pk}",
                order=comment.pk,
            )
        ]

    return batch(rows, limit, "created_at", make)


def handover_proposals(case: Case, viewer: User, limit: int, before: Before) -> Batch:
    """Referent handovers proposed (an acceptance is the `handover` transition): one query."""
    answers_for_case = may_read_changes(case, viewer)
    rows = (
        Handover.objects.filter(before.q("proposed_at"), case=case)
        .select_related("to_user", "to_organisation", "proposed_by")
        .order_by("-proposed_at", "-id")[:limit]
    )

    def make(handover):
        # The message (and a refusal's reason, appended to it) is shown on the page while the
        # handover waits; afterwards, only to those who answer for the case and to its parties.
        parties = (handover.from_user_id, handover.to_user_id, handover.proposed_by_id)
        return [
            TimelineItem(
                at=handover.proposed_at,
                kind="decision",
                text=gettext("New referent proposed: %(user)s (%(organisation)s)")
                % {"user": actor_name(handover.to_user), "organisation": handover.to_organisation.name},
                actor=actor_name(handover.proposed_by),
                details=handover.message
                if handover.status == HandoverStatus.PROPOSED or answers_for_case or viewer.pk in parties
                else "",
                order=handover.pk,
            )
        ]

    return batch(rows, limit, "proposed_at", make)


def handover_answers(case: Case, viewer: User, limit: int, before: Before) -> Batch:
    """Referent handovers declined or cancelled: two queries, the handovers and the audit trail's
    change entries that name who cancelled one (the handover row does not record it)."""
    rows = (
        Handover.objects.filter(
            before.q("decided_at"),
            case=case,
            status__in=(HandoverStatus.DECLINED, HandoverStatus.CANCELLED),
            decided_at__isnull=False,
        )
        .select_related("to_user")
        .order_by("-decided_at", "-id")[:limit]
    )
    cancelled_by = _who_cancelled(case)

    def make(handover):
        if handover.status == HandoverStatus.DECLINED:
            return [
                TimelineItem(
                    at=handover.decided_at,
                    kind="decision",
                    text=gettext("%(user)s declined to become the referent")
                    % {"user": actor_name(handover.to_user)},
                    actor=actor_name(handover.to_user),
                    order=handover.pk,
                )
            ]
        actor = cancelled_by.get(handover.pk)
        return [
            TimelineItem(
                at=handover.decided_at,
                kind="decision",
                text=gettext("Referent handover cancelled"),
                actor=actor_name(actor) if actor is not None else "—",
                automatic=actor is not None and is_system(actor),
                order=handover.pk,
            )
        ]

    return batch(rows, limit, "decided_at", make)


def _who_cancelled(case: Case) -> dict[int, User]:
    """Who cancelled each cancelled handover of the case: one query, even when there is none."""
    from django.contrib.contenttypes.models import ContentType

    from audit.models import AuditEntry

    entries = (
        AuditEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Handover),
            object_id__in=Handover.objects.filter(case=case, status=HandoverStatus.CANCELLED).values("pk"),
            action=AuditEntry.Action.UPDATE,
            changes__has_key="status",
        )
        .select_related("actor")
        .order_by("timestamp", "pk")
    )
    found = {}
    for entry in entries:
        status = entry.changes.get("status") if isinstance(entry.changes, dict) else None
        if isinstance(status, list) and len(status) == 2 and status[1] == HandoverStatus.CANCELLED:
            found[entry.object_id] = entry.actor
    return found


# Fields of the audited models the timeline never lists: stamps, identifiers, and what another item
# already says (the state and its dates, reasons and outcome: the transitions; the referent: the
# handover; the consent: its own item).
NOISE_FIELDS = {"id", "public_id", "last_activity_at", "updated_at", "created_at", "submission_id"}
COVERED_FIELDS = {
    Case: {
        "state",
        "enrolled_at",
        "closed_at",
        "decision_reason",
        "outcome",
        "referent",
        "referent_organisation",
        "consent_recorded_at",
        "consent_recorded_by",
        "consent_text_version",
        "company",
        "site",
        "created_by",
    },
    Need: {"case", "created_by"},
}


def _shown_fields(model) -> list:
    return [
        field
        for field in model._meta.concrete_fields
        if field.name not in NOISE_FIELDS
        and field.name not in COVERED_FIELDS.get(model, ())
        and not field.is_relation
        and field.editable
    ]


def _value(field, raw) -> str | None:
    """A short field's value as the page would show it; None for a long text."""
    if field.get_internal_type() == "TextField":
        return None
    if raw in (None, "None", ""):
        return "—"
    if field.choices:
        return str(dict(field.flatchoices).get(raw, raw))
    if field.get_internal_type() == "DateField":
        try:
            return formats.date_format(date.fromisoformat(str(raw)), "SHORT_DATE_FORMAT")
        except ValueError:
            return str(raw)
    if field.get_internal_type() == "BooleanField":
        return gettext("yes") if str(raw) == "True" else gettext("no")
    return excerpt(str(raw), SHORT_VALUE_LENGTH)


def _changes(model, changes) -> tuple[Change, ...]:
    if not isinstance(changes, dict):
        return ()
    listed = []
    for field in _shown_fields(model):
        if field.name not in changes:
            continue
        values = changes[field.name]
        label = str(capfirst(field.verbose_name))
        if not isinstance(values, list) or len(values) != 2:
            # Redacted by the anonymisation of the case (audit.chain): the field's name only.
            listed.append(Change(label))
            continue
        old, new = (_value(field, raw) for raw in values)
        if old is not None and old == new:
            continue
        listed.append(Change(label, old, new) if old is not None else Change(label))
    return tuple(listed)


def may_read_changes(case: Case, viewer: User) -> bool:
    """The audit trail's former values go to those who answer for the case only."""
    return bool(getattr(viewer, "is_platform_admin", False)) or rules.is_referent_or_animator(case, viewer)


def field_changes(case: Case, viewer: User, limit: int, before: Before) -> Batch:
    """Edits of the case's and its needs' business fields, from the audit trail's change chain (old →
    new for short fields, the name only for long texts): one query. Only this case's rows and its
    needs' rows are read; entries that change none of the listed fields are left out in SQL."""
    if not may_read_changes(case, viewer):
        return Batch([])
    from django.contrib.contenttypes.models import ContentType

    from audit.models import AuditEntry

    types = ContentType.objects.get_for_models(Case, Need)
    case_fields = Q()
    for field in _shown_fields(Case):
        case_fields |= Q(changes__has_key=field.name)
    of_case = Q(content_type=types[Case], object_id=case.pk)
    if case_fields:
        of_case &= case_fields
    else:
        of_case = Q(pk__in=[])
    of_needs = Q(content_type=types[Need], object_id__in=Need.objects.filter(case=case).values("pk"))
    entries = (
        AuditEntry.objects.filter(of_case | of_needs, before.q("timestamp"), action=AuditEntry.Action.UPDATE)
        .select_related("actor")
        .order_by("-timestamp", "-pk")[:limit]
    )
    need_type_id = types[Need].pk

    def make(entry):
        model = Need if entry.content_type_id == need_type_id else Case
        listed = _changes(model, entry.changes)
        if not listed:
            return []
        if model is Need:
            text = gettext("Need changed: %(need)s") % {"need": entry.object_repr}
        else:
            text = gettext("Case details changed")
        return [
            TimelineItem(
                at=entry.timestamp,
                kind="change",
                text=text,
                actor=actor_name(entry.actor),
                automatic=is_system(entry.actor),
                changes=listed,
                order=entry.pk,
            )
        ]

    return batch(entries, limit, "timestamp", make)


CASEWORK_SOURCES: tuple[Source, ...] = (
    transitions,
    consent,
    needs,
    comments,
    handover_proposals,
    handover_answers,
    field_changes,
)
