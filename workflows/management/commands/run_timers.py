from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit import chain
from casework import services as case_services
from notifications import outbox
from workflows import timers


class Command(BaseCommand):
    help = (
        "Déclenche les minuteries des demandes (délais de réponse dépassés) et envoie les courriels "
        "(file d'envoi, résumé quotidien) toutes les N secondes, ou une seule fois avec --once, et "
        "ancre les têtes du journal d'audit hors de la base (AUDIT_ANCHOR_PATH). "
        "Un seul processus à la fois."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--interval",
            type=float,
            default=settings.TIMERS_INTERVAL,
            help="secondes entre deux passages (TIMERS_INTERVAL, 30 par défaut)",
        )
        parser.add_argument("--once", action="store_true", help="un seul passage, puis sortie")

    def handle(self, *args, interval, once, **options):
        if interval <= 0:
            raise CommandError("--interval doit être positif.")
        if once:
            self.stdout.write(f"{timers.sweep()} minuterie(s) déclenchée(s).")
            self.stdout.write(f"{case_services.remind_interventions_due()} rappel(s) d'intervention.")
            self.stdout.write(f"{outbox.run_periodic()} courriel(s) envoyé(s).")
            self.stdout.write(f"{chain.anchor_heads()} ancre(s) du journal d'audit écrite(s).")
            return
        self.stdout.write(f"Minuteries : un passage toutes les {interval:g} s (Ctrl+C pour arrêter).")
        try:
            timers.loop(interval)
        except KeyboardInterrupt:
            pass
