"""The audit trail: django-auditlog's entries (changes of business models and accesses to
confidential pages), stored in our own model so that each entry is chained to the previous one.

Two chains: "change" (create, update, delete) and "access" (who displayed a case or a company).
Each entry carries its position `seq` in its chain, the hash of the previous entry and its own
hash over that previous hash and its canonical content. The content that may hold personal data
(`changes`, `changes_text`, `object_repr`, `serialized_data`, `additional_data`) enters the hash
through a keyed digest of it, `content_digest`, so that the anonymisation of a case can redact it
(`redacted_at`, `redaction_hash`) and leave the chain verifiable. `audit.chain.verify()` recomputes
them and names every entry that was edited, deleted, inserted or moved. On PostgreSQL a trigger
refuses any UPDATE or DELETE of an entry, except the retention purge and the redaction (migrations
0002 and 0004)."""

from auditlog.models import AbstractLogEntry
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Chain(models.TextChoices):
    CHANGE = "change", _("changes")
    ACCESS = "access", _("accesses")


class AuditEntry(AbstractLogEntry):
    # An entry's author stays: users are deactivated, never deleted (PROTECT, not SET_NULL, which
    # would rewrite the entry and break its hash).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        blank=True,
        null=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    chain = models.CharField(_("chain"), max_length=10, choices=Chain.choices)
    seq = models.PositiveBigIntegerField(_("position in the chain"))
    prev_hash = models.CharField(_("hash of the previous entry"), max_length=64)
    entry_hash = models.CharField(_("hash of the entry"), max_length=64)
    # Keyed digest of the redactable content (audit.chain.REDACTABLE); the entry's hash covers it.
    content_digest = models.CharField(_("digest of the content"), max_length=64, default="", db_default="")
    # Set by the anonymisation of a case: the redactable content was replaced (audit.chain.redact).
    redacted_at = models.DateTimeField(_("redacted at"), null=True, blank=True)
    # HMAC over the entry's hash, `redacted_at` and the redacted content: only the key's holder redacts.
    redaction_hash = models.CharField(
        _("hash of the redaction"), max_length=64, blank=True, default="", db_default=""
    )

    class Meta(AbstractLogEntry.Meta):
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        ordering = ["-timestamp", "-pk"]
        constraints = [models.UniqueConstraint(fields=["chain", "seq"], name="audit_entry_chain_seq")]
        indexes = [
            models.Index(fields=["content_type", "object_pk", "action"], name="audit_entry_object_idx")
        ]

    def save(self, *args, **kwargs):
        from audit import chain

        if not self._state.adding:
            raise chain.ImmutableEntryError("audit entries are never changed")
        chain.append(self, *args, **kwargs)

    def _do_insert(self, manager, using, fields, returning_fields, raw):
        from audit import chain

        chain.seal(self)
        return super()._do_insert(manager, using, fields, returning_fields, raw)


class ChainAnchor(models.Model):
    """Where a chain starts after a retention purge: the first kept position and the hash it
    follows. Written only by the purge, in the same transaction as the deletion; `anchor_hash`
    (HMAC with the chain's key over chain, first_seq, prev_hash and purged) lets `verify()` name an
    anchor moved by someone with database access."""

    chain = models.CharField(_("chain"), max_length=10, choices=Chain.choices, unique=True)
    first_seq = models.PositiveBigIntegerField(_("first kept position"))
    prev_hash = models.CharField(_("hash before the first kept entry"), max_length=64)
    purged = models.PositiveBigIntegerField(_("entries purged so far"), default=0)
    anchor_hash = models.CharField(_("hash of the anchor"), max_length=64, default="", db_default="")
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("chain anchor")
        verbose_name_plural = _("chain anchors")

    def __str__(self):
        return f"{self.chain} ≥ {self.first_seq}"
