"""Recompute the audit trail's hash chains and name every entry that was tampered with."""

from django.core.management.base import BaseCommand, CommandError

from audit.chain import verify
from audit.models import AuditEntry


class Command(BaseCommand):
    help = "Vérifie l'intégrité du journal d'audit (chaînes de hachage) et nomme chaque entrée altérée."

    def handle(self, *args, **options):
        problems = verify()
        if problems:
            for problem in problems:
                self.stderr.write(f"ALTÉRATION {problem}")
            raise CommandError(f"Journal d'audit altéré : {len(problems)} problème(s) trouvé(s).")
        count = AuditEntry.objects.count()
        self.stdout.write(self.style.SUCCESS(f"Journal d'audit intact : {count} entrée(s) vérifiée(s)."))
