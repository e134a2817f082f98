"""Remove the audit entries past their retention period and re-anchor each chain, so that
`audit_verify` still passes."""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.formats import date_format

from audit import chain
from audit.models import Chain
from config.commands import positive_int

CHAIN_NAMES = {Chain.ACCESS: "consultations", Chain.CHANGE: "modifications"}


class Command(BaseCommand):
    help = (
        "Supprime les entrées du journal d'audit plus anciennes que leur durée de conservation "
        "(consultations : AUDIT_ACCESS_RETENTION_DAYS, modifications : AUDIT_CHANGE_RETENTION_DAYS) "
        "et réancre chaque chaîne pour que audit_verify reste vert."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--access-days",
            help="durée de conservation des consultations, en jours (défaut : AUDIT_ACCESS_RETENTION_DAYS)",
        )
        parser.add_argument(
            "--change-days",
            help="durée de conservation des modifications, en jours (défaut : AUDIT_CHANGE_RETENTION_DAYS)",
        )
        parser.add_argument(
            "--batch-size", default=5000, help="entrées supprimées par transaction (défaut : 5000)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="affiche ce qui serait supprimé, sans rien supprimer"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="purge même si audit_verify trouve une altération (ses traces peuvent disparaître)",
        )

    def handle(self, *args, **options):
        days = {
            Chain.ACCESS: positive_int(
                options["access_days"]
                if options["access_days"] is not None
                else settings.AUDIT_ACCESS_RETENTION_DAYS,
                "--access-days",
            ),
            Chain.CHANGE: positive_int(
                options["change_days"]
                if options["change_days"] is not None
                else settings.AUDIT_CHANGE_RETENTION_DAYS,
                "--change-days",
            ),
        }
        batch_size = positive_int(options["batch_size"], "--batch-size")
        dry_run = options["dry_run"]
        if not dry_run:
            problems = chain.verify() + chain.check_anchors().problems
            if problems and not options["force"]:
                for problem in problems:
                    self.stderr.write(f"ALTÉRATION {problem}")
                raise CommandError(
                    f"Journal d'audit altéré : {len(problems)} problème(s). Purge refusée, pour ne pas "
                    "effacer les traces de l'altération : lancez audit_verify et examinez-les "
                    "(--force pour purger quand même)."
                )
        now = timezone.now()
        total = 0
        for name in (Chain.ACCESS, Chain.CHANGE):
            cutoff = now - timedelta(days=days[name])
            plan = chain.purge_plan(name, cutoff)
            label = (
                f"Chaîne des {CHAIN_NAMES[name]} (conservation {days[name]} jours, avant le "
                + date_format(timezone.localtime(cutoff), "d/m/Y H:i")
                + ")"
            )
            if plan.count == 0:
                self.stdout.write(f"{label} : rien à supprimer.")
                continue
            if dry_run:
                self.stdout.write(
                    f"{label} : {plan.count} entrée(s) seraient supprimées "
                    f"(positions antérieures à {plan.first_kept})."
                )
                continue
            try:
                removed = chain.purge(plan, batch_size=batch_size)
            except chain.PurgeRefused as refused:
                raise CommandError(
                    f"{label} : la base de données refuse la purge ({refused}). Sur PostgreSQL, le "
                    "rôle de l'application ne peut supprimer que des entrées plus anciennes que la "
                    "conservation minimale fixée dans la base par son administrateur (table "
                    "audit_purgefloor, voir manage.py db_roles)."
                ) from refused
            total += removed
            self.stdout.write(
                f"{label} : {removed} entrée(s) supprimée(s) ; "
                f"la chaîne reprend à la position {plan.first_kept}."
            )
        if dry_run:
            self.stdout.write("Simulation : rien n'a été supprimé.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Purge terminée : {total} entrée(s) supprimée(s)."))
