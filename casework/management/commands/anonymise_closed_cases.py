"""Wipe the free text and contacts of the cases closed for longer than their retention period
(CASE_RETENTION_DAYS), keeping what the statistics count."""

import uuid

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.formats import date_format

from audit.actors import system_actor
from casework import retention
from casework.enums import FINAL_CASE_STATES
from casework.exceptions import BusinessRuleError
from casework.models import Case
from config.commands import positive_int


class Command(BaseCommand):
    help = (
        "Anonymise les dossiers terminés (clôturés, refusés, retirés) depuis plus de "
        "CASE_RETENTION_DAYS jours : textes libres effacés, contacts de l'entreprise supprimés quand "
        "plus aucun dossier n'en a besoin, entrées d'audit correspondantes expurgées ; les "
        "statistiques restent."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            help="jours après la fin du dossier avant l'anonymisation (défaut : CASE_RETENTION_DAYS)",
        )
        parser.add_argument("--limit", help="nombre maximal de dossiers traités (défaut : tous)")
        parser.add_argument(
            "--case",
            help="identifiant public (UUID) d'un seul dossier terminé à anonymiser dès maintenant, "
            "quelle que soit la durée de conservation (droit d'opposition ou d'effacement)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="liste les dossiers concernés sans rien modifier"
        )

    def handle(self, *args, **options):
        days = positive_int(
            options["days"] if options["days"] is not None else settings.CASE_RETENTION_DAYS, "--days"
        )
        limit = positive_int(options["limit"], "--limit") if options["limit"] is not None else None
        now = timezone.now()
        if options["case"] is not None:
            days = 0  # this case now, whatever the retention period
            cases = list(self._one_case(options["case"]))
            self.stdout.write(f"Dossier demandé : {self._describe(cases[0])}.")
        else:
            cases = retention.anonymisable_cases(now=now, days=days).select_related("site")
            if limit is not None:
                cases = cases[:limit]
            cases = list(cases)
            cutoff = date_format(timezone.localtime(retention.retention_cutoff(now=now, days=days)), "d/m/Y")
            self.stdout.write(f"Dossiers terminés avant le {cutoff} et non encore anonymisés : {len(cases)}.")
        if options["dry_run"]:
            for case in cases:
                self.stdout.write(f"  serait anonymisé : {self._describe(case)}")
            self.stdout.write("Simulation : rien n'a été modifié.")
            return
        actor = system_actor()
        done = refused = 0
        for case in cases:
            try:
                result = retention.anonymise_case(actor=actor, case=case, now=now, days=days)
            except BusinessRuleError as error:
                refused += 1
                self.stderr.write(f"  non anonymisé : {self._describe(case)} ({error})")
                continue
            done += 1
            line = (
                f"  anonymisé : {self._describe(case)} ; {sum(result.wiped.values())} texte(s) effacé(s), "
                f"{result.contacts_deleted} contact(s) supprimé(s), "
                f"{result.entries_redacted} entrée(s) d'audit expurgée(s)"
            )
            self.stdout.write(line + ".")
            if result.entries_left:
                self.stderr.write(
                    f"  ATTENTION : {len(result.entries_left)} entrée(s) d'audit altérée(s) laissée(s) "
                    "telle(s) quelle(s) (audit_verify les nomme)."
                )
        self.stdout.write(self.style.SUCCESS(f"Anonymisation terminée : {done} dossier(s) anonymisé(s)."))
        if refused:
            raise CommandError(f"{refused} dossier(s) n'ont pas pu être anonymisés.")

    @staticmethod
    def _one_case(public_id):
        try:
            uuid.UUID(str(public_id))
        except ValueError:
            raise CommandError(
                f"--case attend l'identifiant public d'un dossier (reçu : {public_id!r})."
            ) from None
        case = Case.objects.select_related("site").filter(public_id=public_id).first()
        if case is None:
            raise CommandError(f"Aucun dossier n'a l'identifiant {public_id}.")
        if case.state not in FINAL_CASE_STATES:
            raise CommandError(
                "Ce dossier n'est pas terminé (clôturé, refusé ou retiré) : il ne peut pas être anonymisé."
            )
        if case.anonymised_at is not None:
            raise CommandError("Ce dossier est déjà anonymisé.")
        return [case]

    @staticmethod
    def _describe(case) -> str:
        closed = date_format(timezone.localtime(case.closed_at), "d/m/Y")
        return f"dossier {case.public_id} ({case.site.name}, {case.get_state_display()} le {closed})"
