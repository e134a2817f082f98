"""Reference geography of the Pays de la Loire pilot: departments, territories and pilot sites.

Idempotent: every row is keyed on a stable natural key (department code, territory name, site
slug), so running the command again creates nothing new. Departments and territories are
reference data owned by this file (their names are restored if edited); pilot sites are created
with their defaults only, so the territory, window and cap an administrator edited are kept.

Extending the pilot is a matter of data: add a row to the lists below and run the command again.
"""

import datetime

from django.core.management.base import BaseCommand
from django.db import transaction

from casework.models import Department, PilotSite, Territory

# (code, name)
DEPARTMENTS = [
    ("44", "Loire-Atlantique"),
    ("49", "Maine-et-Loire"),
    ("53", "Mayenne"),
    ("72", "Sarthe"),
    ("85", "Vendée"),
]

# Department code -> "territoires d'actions" shared by every institution.
TERRITORIES = {
    "44": [
        "Loire-Atlantique Centre",
        "Loire-Atlantique Nord",
        "Loire-Atlantique Ouest",
        "Loire-Atlantique Sud",
    ],
    "49": [
        "Maine-et-Loire Centre",
        "Maine-et-Loire Est",
        "Maine-et-Loire Ouest",
        "Maine-et-Loire Sud",
    ],
    "53": ["Mayenne Centre", "Mayenne Nord", "Mayenne Sud"],
    "72": ["Sarthe Centre", "Sarthe Sud", "Sarthe Nord"],
    "85": ["Vendée Sud", "Vendée Centre", "Vendée Nord", "Vendée Ouest"],
}

# One year of experiment, starting on the first Monday of 2026.
DEFAULT_STARTS_ON = datetime.date(2026, 1, 5)
DEFAULT_ENDS_ON = datetime.date(2027, 1, 4)
DEFAULT_ENROLMENT_CAP = 15

# The pilot sites. The territory of each site is a judgement call and is editable data (admin):
# - Ancenis lies north-east of Nantes on the Loire; the Pays d'Ancenis is usually grouped with
#   Châteaubriant in the north(-east) of the department, hence "Loire-Atlantique Nord";
# - Les Herbiers is in the north-east of Vendée (Haut-Bocage, with Montaigu and Mortagne),
#   hence "Vendée Nord".
PILOT_SITES = [
    {"slug": "ancenis", "name": "Ancenis", "department": "44", "territory": "Loire-Atlantique Nord"},
    {"slug": "saumur", "name": "Saumur", "department": "49", "territory": "Maine-et-Loire Est"},
    {"slug": "sud-mayenne", "name": "Sud-Mayenne", "department": "53", "territory": "Mayenne Sud"},
    {
        "slug": "sable-la-fleche",
        "name": "Sablé-sur-Sarthe / La Flèche",
        "department": "72",
        "territory": "Sarthe Sud",
    },
    {"slug": "les-herbiers", "name": "Les Herbiers", "department": "85", "territory": "Vendée Nord"},
]


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count < 2 else plural}"


class Command(BaseCommand):
    help = (
        "Crée (ou complète) la géographie du pilote : 5 départements, 18 territoires d'actions et "
        "5 sites pilotes. Idempotente : une nouvelle exécution ne crée rien de plus et ne modifie "
        "pas le territoire, la période ni le plafond d'un site modifiés par un administrateur."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        created = {"departments": 0, "territories": 0, "sites": 0}

        departments = {}
        for code, name in DEPARTMENTS:
            department, was_created = Department.objects.update_or_create(code=code, defaults={"name": name})
            departments[code] = department
            created["departments"] += was_created

        territories = {}
        for code, names in TERRITORIES.items():
            for name in names:
                territory, was_created = Territory.objects.update_or_create(
                    name=name, defaults={"department": departments[code]}
                )
                territories[name] = territory
                created["territories"] += was_created

        for spec in PILOT_SITES:
            _site, was_created = PilotSite.objects.get_or_create(
                slug=spec["slug"],
                defaults={
                    "name": spec["name"],
                    "department": departments[spec["department"]],
                    "territory": territories[spec["territory"]],
                    "starts_on": spec.get("starts_on", DEFAULT_STARTS_ON),
                    "ends_on": spec.get("ends_on", DEFAULT_ENDS_ON),
                    "enrolment_cap": spec.get("enrolment_cap", DEFAULT_ENROLMENT_CAP),
                },
            )
            created["sites"] += was_created

        summary = ", ".join(
            [
                _plural(len(departments), "département", "départements"),
                _plural(len(territories), "territoire", "territoires"),
                _plural(len(PILOT_SITES), "site pilote", "sites pilotes"),
            ]
        )
        news = ", ".join(
            [
                _plural(created["departments"], "département", "départements"),
                _plural(created["territories"], "territoire", "territoires"),
                _plural(created["sites"], "site", "sites"),
            ]
        )
        if options["verbosity"] >= 1:
            self.stdout.write(self.style.SUCCESS(f"Géographie du pilote : {summary}."))
            self.stdout.write(f"  créés lors de cette exécution : {news}.")
