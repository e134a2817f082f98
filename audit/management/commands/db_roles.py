"""The PostgreSQL roles that keep the audit trail out of the application's reach (audit/roles.py)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection, transaction

from audit import roles
from audit.models import Chain

ACTIONS = ("setup", "grants", "apply", "check")


class Command(BaseCommand):
    help = (
        "Rôles PostgreSQL de la production : « setup » affiche le SQL à passer une fois en "
        "superutilisateur (rôles d'administration, de l'application et gardien du journal, base) ; "
        "« grants » affiche, et « apply » exécute avec le rôle d'administration après chaque "
        "migrate, les droits de chacun (l'application ne peut ni modifier, ni supprimer, ni vider le "
        "journal d'audit) ; « check », lancé avec le rôle de l'application, vérifie qu'il ne peut pas "
        "effacer le journal."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "action", nargs="?", default="setup", help=" | ".join(ACTIONS) + " (défaut : setup)"
        )
        parser.add_argument("--owner", default="tds_owner", help="rôle d'administration (défaut : tds_owner)")
        parser.add_argument("--app", default="tds_app", help="rôle de l'application (défaut : tds_app)")
        parser.add_argument(
            "--keeper",
            default="tds_audit",
            help="rôle gardien du journal, sans connexion (défaut : tds_audit)",
        )
        parser.add_argument("--schema", default="public", help="schéma des tables (défaut : public)")
        parser.add_argument(
            "--database", default=None, help="nom de la base (défaut : celle de DATABASE_URL)"
        )

    def handle(self, *args, action, **options):
        if action not in ACTIONS:
            raise CommandError(f"Action inconnue : {action!r}. Actions : {', '.join(ACTIONS)}.")
        try:
            names = roles.Roles(
                owner=options["owner"], app=options["app"], keeper=options["keeper"], schema=options["schema"]
            )
        except ValueError:
            raise CommandError(
                "Noms de rôles ou de schéma invalides : lettres, chiffres, « _ » et « - », 63 caractères au "
                "plus, sans commencer par un chiffre ; trois rôles distincts."
            ) from None
        floors = {
            Chain.ACCESS: settings.AUDIT_ACCESS_RETENTION_DAYS,
            Chain.CHANGE: settings.AUDIT_CHANGE_RETENTION_DAYS,
        }
        if action == "setup":
            database = options["database"] or str(settings.DATABASES["default"]["NAME"])
            if not roles.NAME.match(database):
                raise CommandError(f"Nom de base invalide : {database!r} (précisez --database).")
            self._print_setup(names, database)
        elif action == "grants":
            self._print(
                f"-- Après chaque migrate, avec le rôle {names.owner} (ou : manage.py db_roles apply).",
                roles.grants_sql(names, floors),
            )
        elif action == "apply":
            self._apply(names, floors)
        else:
            self._check()

    def _print(self, comment: str, statements: list[str]) -> None:
        if comment:
            self.stdout.write(comment)
        for statement in statements:
            self.stdout.write(statement + ";")

    def _print_setup(self, names: roles.Roles, database: str) -> None:
        self._print(
            "-- Une fois, en superutilisateur PostgreSQL (par exemple : manage.py db_roles setup | "
            "sudo -u postgres psql -v ON_ERROR_STOP=1).\n"
            f"-- {names.owner} : administration (migrate, db_roles apply) ; {names.app} : l'application ; "
            f"{names.keeper} : gardien du journal d'audit (sans connexion).",
            roles.setup_sql(names, database),
        )
        self.stdout.write(f"\\connect {roles.quote(database)}")
        self._print("", roles.schema_sql(names))
        self.stdout.write(
            f"-- Ensuite : \\password {names.owner} et \\password {names.app} ; migrate puis "
            f"« manage.py db_roles apply » avec DATABASE_URL au nom de {names.owner} ; l'application "
            f"avec DATABASE_URL au nom de {names.app}."
        )

    def _postgresql(self) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                "Réservé à PostgreSQL. SQLite n'a pas de rôles : l'application peut tout effacer, seules "
                "les chaînes d'empreintes et les ancres hors de la base (AUDIT_ANCHOR_PATH) le révèlent."
            )

    def _apply(self, names: roles.Roles, floors: dict[str, int]) -> None:
        self._postgresql()
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                for statement in roles.grants_sql(names, floors):
                    cursor.execute(statement)
        except DatabaseError as error:
            raise CommandError(
                f"Droits non appliqués (rien n'a changé) : {str(error).splitlines()[0]}. Lancez la "
                f"commande avec le rôle {names.owner}, après migrate, une fois les rôles créés "
                "(manage.py db_roles setup)."
            ) from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Droits appliqués : {names.app} lit et ajoute au journal d'audit sans pouvoir le "
                f"modifier ni le supprimer ; {names.keeper} possède les fonctions de purge et "
                "d'expurgation ; "
                f"conservation minimale : consultations {floors[Chain.ACCESS]} jours, modifications "
                f"{floors[Chain.CHANGE]} jours."
            )
        )

    def _check(self) -> None:
        self._postgresql()
        try:
            found = roles.powers(connection)
        except DatabaseError as error:
            raise CommandError(
                f"Vérification impossible : {str(error).splitlines()[0]}. Les migrations sont-elles "
                "appliquées (manage.py migrate, avec le rôle d'administration) ?"
            ) from error
        reasons = []
        if found.superuser:
            reasons.append("superutilisateur")
        if found.owner:
            reasons.append("propriétaire des tables du journal (il peut désactiver le déclencheur)")
        if found.keeper and not found.owner:
            reasons.append("membre du rôle gardien (le déclencheur l'autorise à purger)")
        if found.can_change:
            reasons.append("droits " + ", ".join(found.can_change))
        if reasons:
            raise CommandError(
                f"Le rôle {found.role} peut effacer ou modifier le journal d'audit : {' ; '.join(reasons)}. "
                "L'application doit tourner avec un rôle qui n'a que les droits de manage.py db_roles apply."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Le rôle {found.role} ne peut ni modifier, ni supprimer, ni vider le journal d'audit"
                + (" ; il purge par la fonction bornée." if found.can_purge else ".")
            )
        )
        if not found.can_purge:
            self.stdout.write(
                "Attention : il ne peut pas appeler la fonction de purge (manage.py db_roles apply)."
            )
