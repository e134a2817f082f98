"""The "before" of an update, kept from the read that locked the row instead of read again.

django-auditlog diffs each update of an audited model against the row as the database has it: its
`pre_save` receiver reads the row again before every save. A request step has just read its
request under the flow's row lock, in the same transaction: nobody can change that row before
the step saves it, so that read already is the "before". `keep(instance)` notes a copy of it;
the instance's next save gives auditlog that copy instead of a new query (`log_update`, connected
in place of auditlog's own receiver by `audit.apps.register`).

Kept only inside a service's transaction (`audited_atomic`, which opens and closes the store), and
used once: it is the row as the database has it until the row's next save, so that save takes it,
whichever instance of the row saves; every later save falls back on auditlog's read, as does
every save without a kept copy. The caller keeps only a row it read under its lock and does not
change with `QuerySet.update()` before saving it."""

import copy
from contextlib import contextmanager
from contextvars import ContextVar

from auditlog import get_logentry_model
from auditlog.context import auditlog_disabled
from auditlog.receivers import _create_log_entry
from auditlog.receivers import log_update as auditlog_log_update
from django.conf import settings

# (model label, pk) -> a copy of the row as read under its lock; None outside a service.
_kept: ContextVar[dict | None] = ContextVar("audit_snapshots", default=None)


@contextmanager
def scope():
    """The store of a service's transaction: opened by the outermost `audited_atomic` block, shared
    by the blocks nested in it, dropped with it."""
    if _kept.get() is not None:
        yield
        return
    token = _kept.set({})
    try:
        yield
    finally:
        _kept.reset(token)


def keep(instance) -> None:
    """`instance` was just read under its row lock in the running service's transaction: keep a
    copy of its values as the "before" of its next update."""
    store = _kept.get()
    if store is None:
        return
    snapshot = copy.copy(instance)
    for field in instance._meta.concrete_fields:
        value = field.value_from_object(instance)
        if isinstance(value, dict | list):  # JSON values change in place: copied apart
            setattr(snapshot, field.attname, copy.deepcopy(value))
    store[(instance._meta.label, instance.pk)] = snapshot


def take(instance):
    """The copy kept of `instance`'s row, dropped from the store (None when there is none)."""
    store = _kept.get()
    if not store:
        return None
    return store.pop((instance._meta.label, instance.pk), None)


def log_update(sender, instance, **kwargs):
    """auditlog's `log_update`, with the kept copy as the "before" when there is one. The copy is
    used up by the save even when auditlog is off for it (`disable_auditlog`, a raw save): the
    row changes all the same, so a later save must not take it."""
    if instance._state.adding or instance.pk is None:
        return
    before = take(instance)
    if auditlog_disabled.get(False) or (kwargs.get("raw") and settings.AUDITLOG_DISABLE_ON_RAW_SAVE):
        return  # what auditlog's `check_disable` decides
    if before is None:
        auditlog_log_update(sender, instance, **kwargs)
        return
    _create_log_entry(
        action=get_logentry_model().Action.UPDATE,
        instance=instance,
        sender=sender,
        diff_old=before,
        diff_new=instance,
        fields_to_check=kwargs.get("update_fields"),
        use_json_for_changes=settings.AUDITLOG_STORE_JSON_CHANGES,
    )
