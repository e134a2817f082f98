from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

# viewflow's Process columns that say nothing to a reader of the trail (its Task table already
# records who did which task and when). Its `status` and `finished` repeat our `stage` and
# `validated_at`: left out, the end node's save adds no second entry to a validation.
PROCESS_NOISE = [
    "process_ptr",
    "flow_class",
    "status",
    "finished",
    "data",
    "parent_task",
    "seed_content_type",
    "seed_object_id",
    "artifact_content_type",
    "artifact_object_id",
]


CASE_DERIVED = ["last_activity_at", "open_requests", "overdue_requests", "next_deadline", "red_at"]


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = _("Audit trail")

    def ready(self):
        from casework import models as casework
        from cockpit import models as cockpit
        from workflows import models as workflows

        # Every business model; not viewflow's Task (its own columns record who and when), and
        # never serialize_data (it breaks saves of the protected FSM field of Case).
        for model in (
            casework.Department,
            casework.Territory,
            casework.PilotSite,
            casework.Organisation,
            casework.Membership,
            casework.SiteAnimator,
            casework.TerritoryObserver,
            casework.CharterAcceptance,
            casework.Company,
            casework.CompanyContact,
            casework.Handover,
            casework.Need,
            casework.ToolboxService,
            casework.Intervention,
            workflows.RequestDecline,
            workflows.Escalation,
        ):
            register(model)
        # The board's figures of a case are derived from its requests (each step is in the trail).
        register(casework.Case, exclude=CASE_DERIVED)
        register(casework.User, exclude=["password", "last_login"])
        register(casework.CaseComment, m2m_fields={"mentions"})
        register(workflows.ServiceRequest, exclude=PROCESS_NOISE)
        # Who created or revoked a calendar link, never the hash of its secret.
        register(cockpit.CalendarFeed, exclude=["token_hash"])
        register(cockpit.ReviewSchedule)
        register(cockpit.WeeklyReview, m2m_fields={"participants"})
        register(cockpit.ReviewItem)
        register(cockpit.ReviewEntry)


def register(model, exclude=(), **options):
    """Register `model` with auditlog, leaving out its reverse relations (auditlog would write
    "casework.Need.None" for each of them in every creation entry). Its updates are diffed by
    `audit.snapshots.log_update`: auditlog's receiver, which takes the "before" kept from the
    locked read of the row when there is one instead of reading the row again."""
    from auditlog.receivers import log_update
    from auditlog.registry import auditlog
    from django.db.models.signals import pre_save

    from audit import snapshots

    reverse = [field.name for field in model._meta.get_fields() if field.auto_created and not field.concrete]
    auditlog.register(model, exclude_fields=[*reverse, *exclude], **options)
    if not pre_save.disconnect(sender=model, dispatch_uid=auditlog._dispatch_uid(pre_save, log_update)):
        raise RuntimeError(f"auditlog's update receiver of {model._meta.label} was not found")
    pre_save.connect(
        snapshots.log_update, sender=model, weak=False, dispatch_uid=("audit.snapshots", model._meta.label)
    )
