"""Recompute the audit trail's hash chains and name every entry that was tampered with."""

import re

from django.core.management.base import BaseCommand, CommandError

from audit.chain import check_head, heads, verify
from audit.models import AuditEntry, Chain

HEAD = re.compile(r"^(?P<chain>[a-z]+):(?P<seq>[0-9]{1,18}):(?P<hash>[0-9a-f]{64})$")


class Command(BaseCommand):
    help = (
        "Vérifie l'intégrité du journal d'audit (chaînes de hachage), nomme chaque entrée altérée et "
        "affiche la tête de chaque chaîne, à conserver hors de la base."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--expect-head",
            action="append",
            default=[],
            metavar="CHAÎNE:POSITION:EMPREINTE",
            help=(
                "Une tête affichée par une vérification précédente (par exemple "
                "change:1234:<64 caractères hexadécimaux>) : vérifie qu'elle est toujours dans la "
                "chaîne, ce qui montre qu'aucune entrée n'a été retirée de la fin. Répétable."
            ),
        )

    def handle(self, *args, **options):
        expected = []
        for value in options["expect_head"]:
            match = HEAD.match(value.strip())
            if match is None or match["chain"] not in Chain.values:
                raise CommandError(
                    f"Tête attendue illisible : {value!r}. Format : CHAÎNE:POSITION:EMPREINTE, "
                    f"CHAÎNE parmi {', '.join(Chain.values)}."
                )
            expected.append((match["chain"], int(match["seq"]), match["hash"]))
        problems = verify()
        problems += [p for p in (check_head(*head) for head in expected) if p is not None]
        if problems:
            for problem in problems:
                self.stderr.write(f"ALTÉRATION {problem}")
            raise CommandError(f"Journal d'audit altéré : {len(problems)} problème(s) trouvé(s).")
        count = AuditEntry.objects.count()
        self.stdout.write(self.style.SUCCESS(f"Journal d'audit intact : {count} entrée(s) vérifiée(s)."))
        for chain, (seq, entry_hash) in heads().items():
            self.stdout.write(f"Tête à conserver hors de la base : {chain}:{seq}:{entry_hash}")
