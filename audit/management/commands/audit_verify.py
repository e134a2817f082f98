"""Recompute the audit trail's hash chains and name every entry that was tampered with."""

import re

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.formats import date_format

from audit.chain import ANCHOR_INTERVAL, check_anchors, check_head, heads, verify
from audit.models import AuditEntry, Chain

HEAD = re.compile(r"^(?P<chain>[a-z]+):(?P<seq>[0-9]{1,18}):(?P<hash>[0-9a-f]{64})$")


class Command(BaseCommand):
    help = (
        "Vérifie l'intégrité du journal d'audit (chaînes de hachage) et la dernière ancre de chaque "
        "chaîne tenue hors de la base (AUDIT_ANCHOR_PATH), nomme chaque entrée altérée ou supprimée "
        "et affiche la tête de chaque chaîne."
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
        anchors = check_anchors()
        problems += anchors.problems
        if problems:
            for problem in problems:
                self.stderr.write(f"ALTÉRATION {problem}")
            raise CommandError(f"Journal d'audit altéré : {len(problems)} problème(s) trouvé(s).")
        count = AuditEntry.objects.count()
        self.stdout.write(self.style.SUCCESS(f"Journal d'audit intact : {count} entrée(s) vérifiée(s)."))
        self._anchors(anchors)
        for chain, (seq, entry_hash) in heads().items():
            self.stdout.write(f"Tête à conserver hors de la base : {chain}:{seq}:{entry_hash}")

    def _anchors(self, anchors) -> None:
        if anchors.path is None:
            self.stdout.write(
                "Pas d'ancres hors de la base (AUDIT_ANCHOR_PATH=off) : la suppression des dernières "
                "entrées, d'une chaîne ou de tout le journal ne se verrait pas."
            )
            return
        for chain in Chain.values:
            anchor = anchors.latest.get(chain)
            if anchor is None:
                continue
            since = anchors.unanchored.get(chain, 0)
            when = date_format(timezone.localtime(anchor.time), "d/m/Y H:i:s")
            self.stdout.write(
                f"Ancre hors de la base vérifiée : {chain} #{anchor.seq} du {when} ; {since} entrée(s) "
                f"écrite(s) depuis, protégée(s) par la chaîne seule jusqu'à la prochaine ancre "
                f"(au plus {ANCHOR_INTERVAL} s quand la boucle de fond tourne)."
            )
