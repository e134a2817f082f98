"""Demonstration data: partner organisations, toolbox, demo accounts, companies and their cases.

Runs `seed_region` first, then creates, idempotently (natural keys, create-only defaults):

- partner organisations across the five departments, each with the territories it serves, and
  the shared toolbox (2-3 services per organisation, every toolbox category covered);
- the demo accounts (one password, `DEMO_PASSWORD`), every role represented, plus one user
  holding two roles (see `USERS`, username "multi-roles@...");
- fictional companies with valid SIRETs (company i always gets the same SIRET, so a second run
  finds it and skips it) and one case each;
- on the cases in support (active, follow-up, closed), their service requests, created with the
  case (so a second run, skipping the company, creates none): one per need whose category the
  toolbox offers in the company's territory. Active cases show every stage of the request flow
  (waiting in a partner's queue, one or two of them past their response deadline so that the next
  sweep of the timers escalates them, claimed, accepted with interventions planned, delivered,
  validated, declined then re-routed, declined by everyone and waiting for the animators,
  cancelled); the requests of cases in follow-up or closed are all validated or cancelled. Every
  step goes through `workflows.services`, by a user entitled to it (the provider's agents, or its
  referents when it has no agent; the partners without any member get an unlisted demo agent).

Up to `SERVICE_PATH_MAX` companies, cases are built through the real service functions
(`case_propose`, `case_transition`, `need_create`, `request_open`, `request_accept`...), exactly as
users would, so the transition log and the request timelines are genuine; the timestamps are then
moved back in time (a few weeks to a few months, each request's steps in order, between the start
of the support and the next transition of the case) so that the demo shows a plausible history
rather than everything happening "just now". Above that volume (benchmarks), companies beyond the
curated set are written with `bulk_create` in batches: cases get their state directly, one
transition row per step, one need when diagnosed, no service request; the site cap is ignored there.

Demo users have not accepted the confidentiality charter: the demo shows it at first login.
"""

import datetime
from dataclasses import dataclass
from itertools import islice

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Count, Max, OuterRef, Subquery
from django.utils import timezone
from django.utils.text import slugify
from stdnum import luhn
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from casework import rules, services
from casework.enums import (
    ENROLLED_CASE_STATES,
    AnimatorRole,
    CaseOutcome,
    CaseState,
    InterventionKind,
    InterventionStatus,
    NeedStatus,
    OrganisationKind,
    SizeBand,
    ToolboxCategory,
)
from casework.management.commands.seed_region import PILOT_SITES, TERRITORIES
from casework.mentions import handle_of
from casework.models import (
    Case,
    CaseComment,
    CaseTransition,
    Company,
    CompanyContact,
    Department,
    Intervention,
    Membership,
    Need,
    Organisation,
    PilotSite,
    SiteAnimator,
    Territory,
    TerritoryObserver,
    ToolboxService,
    User,
)
from notifications.models import Notification

# The demo covers the whole project: this command is the one place of casework that imports workflows.
from workflows import board, routing
from workflows import services as request_services
from workflows.business_days import add_business_days
from workflows.flows import ServiceRequestFlow
from workflows.models import (
    DeclineReason,
    EventKind,
    RequestDecline,
    RequestEvent,
    RequestStatus,
    ServiceRequest,
)

S = CaseState
FLOW = ServiceRequestFlow
K = OrganisationKind
C = ToolboxCategory
B = SizeBand

DEMO_PASSWORD = "Territoires-2026"
DEMO_DOMAIN = "demo.territoires.fr"
DEFAULT_COMPANIES = 60
# Up to this many companies, every case goes through the services; above it, only the curated set.
SERVICE_PATH_MAX = 200
DEFAULT_BATCH_SIZE = 1000
# Demo SIRENs are 8xxxxxxxx: distinct from the test factories (1xxxxxxxx) and from La Poste.
SIREN_BASE = 80_000_000


def all_territories_of(code: str) -> list[str]:
    return list(TERRITORIES[code])


# --- Organisations and their toolbox -------------------------------------------------------------
# "department": None and no territories = a regional body (serves_whole_region), serving every site.
# Services: (name, category, expected response time in business days, description).

ORGANISATIONS = [
    {
        "name": "France Travail Ancenis",
        "kind": K.FRANCE_TRAVAIL,
        "department": "44",
        "territories": ["Loire-Atlantique Nord"],
        "services": [
            (
                "Méthode de recrutement par simulation (MRS)",
                C.RECRUITMENT,
                5,
                "Évaluation des candidats sur les habiletés requises par le poste, sans CV.",
            ),
            (
                "Préparation opérationnelle à l'emploi individuelle (POEI)",
                C.TRAINING,
                10,
                "Formation financée avant l'embauche d'un demandeur d'emploi.",
            ),
        ],
    },
    {
        "name": "Mission locale du Pays d'Ancenis",
        "kind": K.MISSION_LOCALE,
        "department": "44",
        "territories": ["Loire-Atlantique Nord"],
        "services": [
            (
                "Présentation de jeunes candidats motivés",
                C.INSERTION,
                3,
                "Repérage et préparation de jeunes de 16 à 25 ans accompagnés par la Mission locale.",
            ),
            (
                "Immersion en entreprise (PMSMP) pour les 16-25 ans",
                C.ORIENTATION,
                5,
                "Quelques jours en entreprise pour découvrir un métier avant de s'engager.",
            ),
        ],
    },
    {
        "name": "France Travail Saumur",
        "kind": K.FRANCE_TRAVAIL,
        "department": "49",
        "territories": ["Maine-et-Loire Est"],
        "services": [
            (
                "Présélection de candidats sur offre",
                C.RECRUITMENT,
                4,
                "Diffusion de l'offre et présélection de profils par un conseiller entreprises.",
            ),
            (
                "Action de formation préalable au recrutement (AFPR)",
                C.TRAINING,
                8,
                "Formation courte d'un candidat avant la signature d'un contrat de six mois ou plus.",
            ),
        ],
    },
    {
        "name": "Mission locale du Saumurois",
        "kind": K.MISSION_LOCALE,
        "department": "49",
        "territories": ["Maine-et-Loire Est"],
        "services": [
            (
                "Accompagnement intensif des jeunes (contrat d'engagement jeune)",
                C.INSERTION,
                5,
                "Mise en relation avec des jeunes suivis et accompagnement pendant la prise de poste.",
            ),
            (
                "Forum découverte des métiers",
                C.ORIENTATION,
                10,
                "Présentation des métiers de l'entreprise à des jeunes en recherche d'orientation.",
            ),
        ],
    },
    {
        "name": "CCI Maine-et-Loire",
        "kind": K.CCI,
        "department": "49",
        "territories": all_territories_of("49"),
        "services": [
            (
                "Diagnostic RH pour TPE-PME",
                C.HR_SUPPORT,
                7,
                "Un conseiller analyse l'organisation RH et propose un plan d'action.",
            ),
            (
                "Atelier marque employeur",
                C.RECRUITMENT,
                10,
                "Rendre les offres plus attractives et valoriser l'entreprise auprès des candidats.",
            ),
        ],
    },
    {
        "name": "CLEE du Saumurois",
        "kind": K.RECTORAT,
        "department": "49",
        "territories": ["Maine-et-Loire Est"],
        "services": [
            (
                "Stages de découverte pour collégiens et lycéens",
                C.ORIENTATION,
                10,
                "Accueil d'élèves de 3e et de lycée professionnel en stage d'observation.",
            ),
            (
                "Visites d'entreprise pour les équipes éducatives",
                C.ORIENTATION,
                10,
                "Faire connaître les métiers de l'entreprise aux professeurs et psychologues de l'EN.",
            ),
        ],
    },
    {
        "name": "OPCO 2i Pays de la Loire",
        "kind": K.OPCO,
        "department": None,
        "territories": [],
        "services": [
            (
                "Diagnostic compétences et GEPP pour PME industrielles",
                C.HR_SUPPORT,
                10,
                "Anticiper les départs et les besoins en compétences, avec un plan de formation.",
            ),
            (
                "Financement de parcours en alternance",
                C.TRAINING,
                7,
                "Prise en charge des contrats d'apprentissage et de professionnalisation.",
            ),
        ],
    },
    {
        "name": "Région Pays de la Loire — DTOE",
        "kind": K.REGION,
        "department": None,
        "territories": [],
        "services": [
            (
                "Formation qualifiante financée par la Région",
                C.TRAINING,
                10,
                "Entrée de demandeurs d'emploi dans une formation qualifiante vers les métiers en tension.",
            ),
            (
                "Parcours d'orientation « Choisir son métier »",
                C.ORIENTATION,
                8,
                "Ateliers et immersions pour confirmer un projet professionnel.",
            ),
            (
                "Aide régionale au logement des apprentis",
                C.HOUSING,
                6,
                "Aide au premier logement pour les apprentis éloignés de leur lieu de travail.",
            ),
        ],
    },
    {
        "name": "France Travail Château-Gontier",
        "kind": K.FRANCE_TRAVAIL,
        "department": "53",
        "territories": ["Mayenne Sud"],
        "services": [
            (
                "Job dating local",
                C.RECRUITMENT,
                6,
                "Rencontres express entre l'entreprise et des candidats présélectionnés.",
            ),
            (
                "Préparation opérationnelle à l'emploi collective (POEC)",
                C.TRAINING,
                10,
                "Formation d'un groupe de demandeurs d'emploi aux compétences d'un métier.",
            ),
        ],
    },
    {
        "name": "Plateforme mobilité Sud-Mayenne",
        "kind": K.MOBILITY,
        "department": "53",
        "territories": ["Mayenne Sud", "Mayenne Centre"],
        "services": [
            (
                "Location solidaire de véhicules",
                C.MOBILITY,
                3,
                "Voitures et scooters loués à petit prix pendant les premiers mois d'un emploi.",
            ),
            (
                "Diagnostic mobilité des salariés",
                C.MOBILITY,
                5,
                "Étude des trajets domicile-travail et des solutions (covoiturage, transport à la demande).",
            ),
            (
                "Aide au permis de conduire",
                C.MOBILITY,
                10,
                "Accompagnement et financement partiel du permis B pour les salariés recrutés.",
            ),
        ],
    },
    {
        "name": "Département de la Mayenne — Insertion",
        "kind": K.DEPARTEMENT,
        "department": "53",
        "territories": all_territories_of("53"),
        "services": [
            (
                "Recrutement de bénéficiaires du RSA accompagnés",
                C.INSERTION,
                5,
                "Présentation de candidats suivis par les référents insertion du Département.",
            ),
            (
                "Clauses sociales et parrainage",
                C.OTHER,
                8,
                "Appui aux entreprises qui souhaitent parrainer une personne éloignée de l'emploi.",
            ),
        ],
    },
    {
        "name": "France Travail Sablé-sur-Sarthe",
        "kind": K.FRANCE_TRAVAIL,
        "department": "72",
        "territories": ["Sarthe Sud"],
        "services": [
            (
                "Méthode de recrutement par simulation (MRS)",
                C.RECRUITMENT,
                5,
                "Évaluation des candidats sur les habiletés requises par le poste, sans CV.",
            ),
            (
                "Période de mise en situation en milieu professionnel (PMSMP)",
                C.ORIENTATION,
                4,
                "Immersion d'un candidat pour valider un projet avant recrutement.",
            ),
        ],
    },
    {
        "name": "AFPA Sablé",
        "kind": K.TRAINING,
        "department": "72",
        "territories": ["Sarthe Sud", "Sarthe Centre"],
        "services": [
            (
                "Titre professionnel agent de fabrication industrielle",
                C.TRAINING,
                10,
                "Formation qualifiante de quatre mois avec période en entreprise.",
            ),
            (
                "Validation des acquis de l'expérience (VAE)",
                C.TRAINING,
                10,
                "Faire reconnaître par un diplôme l'expérience des salariés en poste.",
            ),
        ],
    },
    {
        "name": "Habitat Jeunes du Pays fléchois",
        "kind": K.HOUSING,
        "department": "72",
        "territories": ["Sarthe Sud"],
        "services": [
            (
                "Logement temporaire pour salariés et alternants",
                C.HOUSING,
                4,
                "Chambres et studios meublés pour les nouveaux embauchés, de une semaine à deux ans.",
            ),
            (
                "Accompagnement à la recherche de logement",
                C.HOUSING,
                7,
                "Aide aux démarches et mise en relation avec les bailleurs du territoire.",
            ),
        ],
    },
    {
        "name": "France Travail Les Herbiers",
        "kind": K.FRANCE_TRAVAIL,
        "department": "85",
        "territories": ["Vendée Nord"],
        "services": [
            (
                "Présélection de candidats sur offre",
                C.RECRUITMENT,
                4,
                "Diffusion de l'offre et présélection de profils par un conseiller entreprises.",
            ),
            (
                "Action de formation préalable au recrutement (AFPR)",
                C.TRAINING,
                8,
                "Formation courte d'un candidat avant la signature d'un contrat de six mois ou plus.",
            ),
        ],
    },
    {
        "name": "Cap emploi 85",
        "kind": K.CAP_EMPLOI,
        "department": "85",
        "territories": all_territories_of("85"),
        "services": [
            (
                "Recrutement de travailleurs en situation de handicap",
                C.INSERTION,
                5,
                "Présentation de candidats et appui à l'adaptation du poste.",
            ),
            (
                "Maintien dans l'emploi et aménagement de poste",
                C.HR_SUPPORT,
                10,
                "Étude ergonomique et aides financières pour garder un salarié en poste.",
            ),
        ],
    },
    {
        "name": "Communauté de communes du Pays des Herbiers",
        "kind": K.EPCI,
        "department": "85",
        "territories": ["Vendée Nord"],
        "services": [
            (
                "Transport à la demande pour salariés",
                C.MOBILITY,
                5,
                "Navettes sur réservation entre les bourgs et les zones d'activités.",
            ),
            (
                "Bourse aux logements chez l'habitant",
                C.HOUSING,
                6,
                "Mise en relation des nouveaux salariés avec des habitants qui louent une chambre.",
            ),
            (
                "Accueil des nouveaux salariés et de leur famille",
                C.OTHER,
                7,
                "Visite du territoire, emploi du conjoint, inscriptions scolaires.",
            ),
        ],
    },
    {
        "name": "Crèche interentreprises Les Petits Bocains",
        "kind": K.OTHER,
        "department": "85",
        "territories": ["Vendée Nord"],
        "services": [
            (
                "Places de crèche réservées aux salariés",
                C.CHILDCARE,
                10,
                "Berceaux réservés par les entreprises adhérentes pour leurs salariés.",
            ),
            (
                "Accueil des enfants en horaires décalés",
                C.CHILDCARE,
                10,
                "Ouverture de 5 h 30 à 21 h 30 pour les salariés en équipes postées.",
            ),
        ],
    },
]


# --- Demo accounts -------------------------------------------------------------------------------
# Memberships: (organisation, can_be_referent, job title). Animators are generated per pilot site
# (one CDET and one DTOE each), so adding a site to seed_region gives it its animators.

USERS = [
    {"local": "admin", "first_name": "Nathalie", "last_name": "Guérin", "admin": True},
    {
        "local": "referente.ancenis",
        "first_name": "Claire",
        "last_name": "Ménard",
        "memberships": [("France Travail Ancenis", True, "Conseillère entreprises")],
    },
    {
        "local": "referent.ml-ancenis",
        "first_name": "Antoine",
        "last_name": "Lebreton",
        "memberships": [("Mission locale du Pays d'Ancenis", True, "Chargé de relations entreprises")],
    },
    {
        "local": "referent.saumur",
        "first_name": "Thomas",
        "last_name": "Giraud",
        "memberships": [("France Travail Saumur", True, "Conseiller entreprises")],
    },
    {
        "local": "referente.cci49",
        "first_name": "Émilie",
        "last_name": "Boutin",
        "memberships": [("CCI Maine-et-Loire", True, "Conseillère RH entreprises")],
    },
    {
        "local": "referente.sud-mayenne",
        "first_name": "Aurélie",
        "last_name": "Cottin",
        "memberships": [("France Travail Château-Gontier", True, "Conseillère entreprises")],
    },
    {
        "local": "referent.departement53",
        "first_name": "Guillaume",
        "last_name": "Rocher",
        "memberships": [("Département de la Mayenne — Insertion", True, "Chargé de relations entreprises")],
    },
    {
        "local": "referent.sable",
        "first_name": "Nicolas",
        "last_name": "Pineau",
        "memberships": [("France Travail Sablé-sur-Sarthe", True, "Conseiller entreprises")],
    },
    {
        "local": "referente.les-herbiers",
        "first_name": "Laure",
        "last_name": "Gaborit",
        "memberships": [("France Travail Les Herbiers", True, "Conseillère entreprises")],
    },
    {
        "local": "referent.capemploi85",
        "first_name": "Mathieu",
        "last_name": "Rabaud",
        "memberships": [("Cap emploi 85", True, "Chargé de mission recrutement et maintien")],
    },
    {
        "local": "referente.opco",
        "first_name": "Hélène",
        "last_name": "Drouet",
        "memberships": [("OPCO 2i Pays de la Loire", True, "Conseillère emploi-formation")],
    },
    # The user holding two roles: referent for the Mission locale du Saumurois AND partner agent
    # (not referent) of the CCI Maine-et-Loire, where she is seconded half-time for apprenticeship.
    {
        "local": "multi-roles",
        "first_name": "Camille",
        "last_name": "Fradin",
        "memberships": [
            ("Mission locale du Saumurois", True, "Conseillère en insertion professionnelle"),
            ("CCI Maine-et-Loire", False, "Chargée de mission apprentissage (mise à disposition)"),
        ],
    },
    {
        "local": "agent.mobilite",
        "first_name": "Yannick",
        "last_name": "Bodin",
        "memberships": [("Plateforme mobilité Sud-Mayenne", False, "Conseiller mobilité")],
    },
    {
        "local": "agent.habitat",
        "first_name": "Manon",
        "last_name": "Lecomte",
        "memberships": [("Habitat Jeunes du Pays fléchois", False, "Chargée d'accueil logement")],
    },
    {
        "local": "agent.formation",
        "first_name": "Bruno",
        "last_name": "Chesneau",
        "memberships": [("AFPA Sablé", False, "Responsable des relations entreprises")],
    },
    # Agents of the partners that had no member: every organisation of the toolbox can take the
    # requests routed to it. They add no role to the table of accounts ("listed": False).
    {
        "local": "agent.region",
        "first_name": "Sophie",
        "last_name": "Chéneau",
        "memberships": [("Région Pays de la Loire — DTOE", False, "Chargée de mission emploi-formation")],
        "listed": False,
    },
    {
        "local": "agent.clee",
        "first_name": "Damien",
        "last_name": "Morisseau",
        "memberships": [("CLEE du Saumurois", False, "Coordinateur école-entreprise")],
        "listed": False,
    },
    {
        "local": "agent.cc-herbiers",
        "first_name": "Lucie",
        "last_name": "Grellier",
        "memberships": [
            ("Communauté de communes du Pays des Herbiers", False, "Chargée de l'accueil des nouveaux actifs")
        ],
        "listed": False,
    },
    {
        "local": "agent.creche",
        "first_name": "Karima",
        "last_name": "Benali",
        "memberships": [("Crèche interentreprises Les Petits Bocains", False, "Directrice de la crèche")],
        "listed": False,
    },
    {
        "local": "observateur.44",
        "first_name": "Patrick",
        "last_name": "Legendre",
        "observes": ["Loire-Atlantique Nord"],
    },
    {
        "local": "observateur.85",
        "first_name": "Martine",
        "last_name": "Jolly",
        "observes": ["Vendée Nord"],
    },
]

ANIMATOR_NAMES = [
    ("Isabelle", "Renaud"),
    ("Marc", "Besnier"),
    ("Catherine", "Poirier"),
    ("Olivier", "Chauvin"),
    ("Sandrine", "Lemaire"),
    ("Julien", "Hardy"),
    ("Valérie", "Barbier"),
    ("Stéphane", "Gilbert"),
    ("Céline", "Roussel"),
    ("Frédéric", "Aubert"),
    ("Agnès", "Maillard"),
    ("Pascal", "Huet"),
]


def user_specs() -> list[dict]:
    """Every demo account: the fixed ones, then one CDET and one DTOE animator per pilot site."""
    specs = [dict(spec) for spec in USERS]
    for index, site in enumerate(PILOT_SITES):
        for offset, role in enumerate((AnimatorRole.CDET, AnimatorRole.DTOE)):
            first, last = ANIMATOR_NAMES[(2 * index + offset) % len(ANIMATOR_NAMES)]
            specs.insert(
                1 + 2 * index + offset,
                {
                    "local": f"{role.value}.{site['slug']}",
                    "first_name": first,
                    "last_name": last,
                    "animates": (site["slug"], role.value),
                },
            )
    for spec in specs:
        spec["username"] = f"{spec['local']}@{DEMO_DOMAIN}"
    return specs


ROLE_LABELS = {
    "admin": "Administration de la plateforme",
    "cdet": "Animation CDET (État)",
    "dtoe": "Animation DTOE (Région)",
    "referent": "Référent",
    "agent": "Agent partenaire",
    "observer": "Observateur (CLEFOP)",
}


@dataclass
class Account:
    username: str
    full_name: str
    roles: tuple[str, ...]
    attachment: str

    @property
    def role_label(self) -> str:
        return " + ".join(ROLE_LABELS[role] for role in self.roles)


def demo_accounts() -> list[Account]:
    """The demo accounts with their roles ("admin", "cdet", "dtoe", "referent", "agent",
    "observer"), as listed to the operator (not the unlisted agents, who add no role)."""
    sites = {site["slug"]: site["name"] for site in PILOT_SITES}
    accounts = []
    for spec in user_specs():
        if not spec.get("listed", True):
            continue
        roles, places = [], []
        if spec.get("admin"):
            roles.append("admin")
            places.append("toute la plateforme")
        if "animates" in spec:
            slug, role = spec["animates"]
            roles.append(role)
            places.append(f"site {sites[slug]}")
        for organisation, can_be_referent, _job in spec.get("memberships", []):
            role = "referent" if can_be_referent else "agent"
            if role not in roles:
                roles.append(role)
            places.append(
                organisation
                + ("" if len(spec.get("memberships", [])) < 2 else f" ({ROLE_LABELS[role].lower()})")
            )
        if spec.get("observes"):
            roles.append("observer")
            places.append(", ".join(spec["observes"]))
        accounts.append(
            Account(
                username=spec["username"],
                full_name=f"{spec['first_name']} {spec['last_name']}",
                roles=tuple(roles),
                attachment=" ; ".join(places),
            )
        )
    return accounts


# --- Companies -----------------------------------------------------------------------------------
# Communes of each pilot site's area: (commune, postcode, territory). Territories other than the
# site's own are in the same department (the services require it).

SITE_AREAS = {
    "ancenis": [
        ("Ancenis-Saint-Géréon", "44150", "Loire-Atlantique Nord"),
        ("Loireauxence", "44370", "Loire-Atlantique Nord"),
        ("Ligné", "44850", "Loire-Atlantique Nord"),
        ("Vallons-de-l'Erdre", "44540", "Loire-Atlantique Nord"),
        ("Mésanger", "44522", "Loire-Atlantique Nord"),
        ("Riaillé", "44440", "Loire-Atlantique Nord"),
        ("Couffé", "44521", "Loire-Atlantique Nord"),
        ("Oudon", "44521", "Loire-Atlantique Centre"),
    ],
    "saumur": [
        ("Saumur", "49400", "Maine-et-Loire Est"),
        ("Doué-en-Anjou", "49700", "Maine-et-Loire Est"),
        ("Montreuil-Bellay", "49260", "Maine-et-Loire Est"),
        ("Longué-Jumelles", "49160", "Maine-et-Loire Est"),
        ("Gennes-Val-de-Loire", "49350", "Maine-et-Loire Est"),
        ("Vivy", "49680", "Maine-et-Loire Est"),
        ("Allonnes", "49650", "Maine-et-Loire Est"),
        ("Brissac Loire Aubance", "49320", "Maine-et-Loire Centre"),
    ],
    "sud-mayenne": [
        ("Château-Gontier-sur-Mayenne", "53200", "Mayenne Sud"),
        ("Craon", "53400", "Mayenne Sud"),
        ("Cossé-le-Vivien", "53230", "Mayenne Sud"),
        ("Renazé", "53800", "Mayenne Sud"),
        ("Meslay-du-Maine", "53170", "Mayenne Sud"),
        ("Grez-en-Bouère", "53290", "Mayenne Sud"),
        ("Bierné-les-Villages", "53290", "Mayenne Sud"),
        ("Évron", "53600", "Mayenne Centre"),
    ],
    "sable-la-fleche": [
        ("Sablé-sur-Sarthe", "72300", "Sarthe Sud"),
        ("La Flèche", "72200", "Sarthe Sud"),
        ("Malicorne-sur-Sarthe", "72270", "Sarthe Sud"),
        ("Le Lude", "72800", "Sarthe Sud"),
        ("Précigné", "72300", "Sarthe Sud"),
        ("Mayet", "72360", "Sarthe Sud"),
        ("Parcé-sur-Sarthe", "72300", "Sarthe Sud"),
        ("Loué", "72540", "Sarthe Centre"),
    ],
    "les-herbiers": [
        ("Les Herbiers", "85500", "Vendée Nord"),
        ("Mortagne-sur-Sèvre", "85290", "Vendée Nord"),
        ("Pouzauges", "85700", "Vendée Nord"),
        ("Montaigu-Vendée", "85600", "Vendée Nord"),
        ("Saint-Fulgent", "85250", "Vendée Nord"),
        ("Mesnard-la-Barotière", "85500", "Vendée Nord"),
        ("Mouchamps", "85640", "Vendée Centre"),
        ("Chantonnay", "85110", "Vendée Centre"),
    ],
}

# The curated companies of each site: (name, NAF code, size band, commune, job in short supply).
CURATED_COMPANIES = {
    "ancenis": [
        ("Menuiserie Durand", "16.23Z", B.B10_19, "Ligné", "menuisiers poseurs"),
        (
            "Ateliers Mécaniques de l'Erdre",
            "25.62B",
            B.B50_99,
            "Vallons-de-l'Erdre",
            "techniciens de maintenance",
        ),
        ("Transports Rivière", "49.41A", B.B20_49, "Ancenis-Saint-Géréon", "conducteurs poids lourds"),
        ("Laiterie du Val de Loire", "10.51A", B.B100_199, "Ancenis-Saint-Géréon", "conducteurs de ligne"),
        ("Restaurant Le Port d'Oudon", "56.10A", B.B6_9, "Oudon", "cuisiniers"),
        ("EHPAD Les Coteaux de Loire", "87.10A", B.B50_99, "Loireauxence", "aides-soignants"),
        ("Chaudronnerie Moreau", "25.11Z", B.B20_49, "Mésanger", "soudeurs"),
        ("Boulangerie Pâtisserie Guillou", "10.71C", B.B3_5, "Riaillé", "boulangers"),
        (
            "Volailles du Pays d'Ancenis",
            "10.12Z",
            B.B200_249,
            "Ancenis-Saint-Géréon",
            "opérateurs de découpe",
        ),
        ("Électricité Bretonnière", "43.21A", B.B10_19, "Couffé", "électriciens"),
        ("Domaine des Coteaux d'Ancenis", "01.21Z", B.B3_5, "Ancenis-Saint-Géréon", "ouvriers viticoles"),
        ("Plasturgie de l'Erdre", "22.29A", B.B100_199, "Mésanger", "régleurs sur presse"),
    ],
    "saumur": [
        (
            "Ateliers Mécaniques du Layon",
            "25.62B",
            B.B50_99,
            "Doué-en-Anjou",
            "usineurs sur commande numérique",
        ),
        ("Champignonnière du Saumurois", "01.13Z", B.B20_49, "Saumur", "cueilleurs"),
        ("Maison Bréchet Vins de Loire", "11.02B", B.B10_19, "Saumur", "cavistes"),
        ("Hôtel-Restaurant Le Val de Thouet", "55.10Z", B.B20_49, "Montreuil-Bellay", "réceptionnistes"),
        ("Transports Gaudin et Fils", "49.41A", B.B50_99, "Longué-Jumelles", "conducteurs poids lourds"),
        ("Pépinières de l'Authion", "01.30Z", B.B20_49, "Vivy", "ouvriers horticoles"),
        ("Aide à domicile Saumur Val de Loire", "88.10A", B.B100_199, "Saumur", "auxiliaires de vie"),
        ("Menuiseries Alu du Saumurois", "25.12Z", B.B20_49, "Saumur", "poseurs de menuiseries"),
        ("Garage Lemoine Automobiles", "45.20A", B.B6_9, "Gennes-Val-de-Loire", "mécaniciens automobile"),
        ("Électronique Val de Loire Industrie", "26.11Z", B.B200_249, "Saumur", "câbleurs"),
        ("Boulangerie Fouquet", "10.71C", B.B3_5, "Montreuil-Bellay", "boulangers"),
        ("Maçonnerie Aubance Bâtiment", "43.99C", B.B10_19, "Brissac Loire Aubance", "maçons"),
    ],
    "sud-mayenne": [
        ("Fromagerie des Coëvrons", "10.51C", B.B100_199, "Évron", "fromagers"),
        (
            "Abattoir du Haut-Anjou",
            "10.11Z",
            B.B250_499,
            "Château-Gontier-sur-Mayenne",
            "opérateurs de découpe",
        ),
        ("Menuiserie Chevalier", "16.23Z", B.B10_19, "Craon", "menuisiers d'atelier"),
        ("Transports Bréhin", "49.41A", B.B20_49, "Cossé-le-Vivien", "conducteurs routiers"),
        ("EHPAD La Roseraie", "87.10A", B.B50_99, "Craon", "aides-soignants"),
        ("Aliments du Bétail Sud-Mayenne", "10.91Z", B.B20_49, "Meslay-du-Maine", "conducteurs de ligne"),
        ("Garage Pelletier", "45.20A", B.B3_5, "Renazé", "mécaniciens agricoles"),
        ("Ardoises et Pierres de Renazé", "08.11Z", B.B10_19, "Renazé", "tailleurs de pierre"),
        ("Mécanique de Précision du Maine", "25.62B", B.B20_49, "Château-Gontier-sur-Mayenne", "tourneurs"),
        ("GAEC du Bois-Joly", "01.41Z", B.B3_5, "Grez-en-Bouère", "salariés agricoles"),
        ("Auberge du Halage", "56.10A", B.B6_9, "Château-Gontier-sur-Mayenne", "commis de cuisine"),
        ("Plomberie Chauffage Hamon", "43.22B", B.B6_9, "Bierné-les-Villages", "chauffagistes"),
    ],
    "sable-la-fleche": [
        ("Biscuiterie de la Sarthe", "10.72Z", B.B100_199, "Sablé-sur-Sarthe", "conducteurs de ligne"),
        ("Élevages Avicoles du Maine", "01.47Z", B.B3_5, "Loué", "éleveurs"),
        ("Faïencerie du Val de Sarthe", "23.41Z", B.B6_9, "Malicorne-sur-Sarthe", "céramistes"),
        ("Charcuterie Lebrun", "10.13B", B.B10_19, "Précigné", "bouchers-charcutiers"),
        ("Transports du Loir", "49.41A", B.B50_99, "La Flèche", "conducteurs poids lourds"),
        ("Imprimerie Fléchoise", "18.12Z", B.B20_49, "La Flèche", "conducteurs offset"),
        ("Scierie du Lude", "16.10A", B.B10_19, "Le Lude", "scieurs"),
        ("Résidence Les Tilleuls", "87.10A", B.B50_99, "La Flèche", "infirmiers"),
        ("Plastiques Techniques Saboliens", "22.29A", B.B50_99, "Sablé-sur-Sarthe", "régleurs sur presse"),
        ("Garage Cormier", "45.20A", B.B3_5, "Mayet", "carrossiers"),
        ("Nettoyage Industriel Sarthe Sud", "81.22Z", B.B20_49, "Parcé-sur-Sarthe", "agents de propreté"),
        ("La Table du Loir", "56.10A", B.B6_9, "La Flèche", "serveurs"),
    ],
    "les-herbiers": [
        ("Menuiserie Industrielle du Bocage", "16.23Z", B.B100_199, "Les Herbiers", "menuisiers d'atelier"),
        ("Composites Nautiques Vendéens", "30.12Z", B.B250_499, "Les Herbiers", "stratifieurs"),
        ("Meubles Rondeau", "31.09B", B.B50_99, "Mortagne-sur-Sèvre", "ébénistes"),
        ("Salaisons du Bocage", "10.13A", B.B200_249, "Pouzauges", "opérateurs de production"),
        ("Chaussures Tessier", "15.20Z", B.B20_49, "Mortagne-sur-Sèvre", "piqueurs"),
        ("Transports Herbretais", "49.41A", B.B50_99, "Les Herbiers", "conducteurs routiers"),
        ("EHPAD Le Mont des Alouettes", "87.10A", B.B50_99, "Les Herbiers", "aides-soignants"),
        ("Boulangerie Jaunet", "10.71C", B.B3_5, "Saint-Fulgent", "boulangers"),
        ("Électricité Générale du Bocage", "43.21A", B.B20_49, "Mesnard-la-Barotière", "électriciens"),
        ("Mécanique Générale du Lay", "25.62B", B.B10_19, "Mouchamps", "soudeurs"),
        ("Maraîchage des Landes", "01.13Z", B.B6_9, "Montaigu-Vendée", "ouvriers maraîchers"),
        ("Le Relais du Bocage", "56.10A", B.B6_9, "Chantonnay", "cuisiniers"),
    ],
}


def _interleave(groups: dict[str, list]) -> list[tuple[str, int, tuple]]:
    """(site slug, position in the site, entry), taking one company of each site in turn, so that
    `--companies 10` still covers every site."""
    result, position = [], 0
    while any(position < len(entries) for entries in groups.values()):
        for slug, entries in groups.items():
            if position < len(entries):
                result.append((slug, position, entries[position]))
        position += 1
    return result


CURATED = _interleave(CURATED_COMPANIES)

# Activities of the generated companies beyond the curated set: (name prefix, NAF code, job).
ACTIVITIES = [
    ("Menuiserie", "16.23Z", "menuisiers"),
    ("Mécanique industrielle", "25.62B", "techniciens de maintenance"),
    ("Transports", "49.41A", "conducteurs poids lourds"),
    ("Restaurant", "56.10A", "cuisiniers"),
    ("Résidence seniors", "87.10A", "aides-soignants"),
    ("Fromagerie", "10.51C", "opérateurs de production"),
    ("Chaudronnerie", "25.11Z", "soudeurs"),
    ("Boulangerie", "10.71C", "boulangers"),
    ("Maçonnerie", "43.99C", "maçons"),
    ("Électricité", "43.21A", "électriciens"),
    ("Garage", "45.20A", "mécaniciens automobile"),
    ("Aide à domicile", "88.10A", "auxiliaires de vie"),
    ("Plasturgie", "22.29A", "régleurs sur presse"),
    ("Logistique", "52.10B", "préparateurs de commandes"),
    ("Propreté", "81.21Z", "agents de propreté"),
    ("Imprimerie", "18.12Z", "conducteurs offset"),
    ("Charcuterie", "10.13B", "bouchers-charcutiers"),
    ("Pépinières", "01.30Z", "ouvriers horticoles"),
    ("Chauffage", "43.22B", "chauffagistes"),
    ("Décolletage", "25.62A", "décolleteurs"),
]
SURNAMES = [
    "Baudry",
    "Bellanger",
    "Bigot",
    "Blanchard",
    "Bouvier",
    "Brosseau",
    "Cadiou",
    "Charrier",
    "Chiron",
    "Coutant",
    "Delaunay",
    "Dubreuil",
    "Esnault",
    "Fleury",
    "Gautier",
    "Gohier",
    "Guillet",
    "Hervouet",
    "Jamin",
    "Jousseaume",
    "Lambert",
    "Landais",
    "Loiseau",
    "Macé",
    "Martineau",
    "Mercier",
    "Naud",
    "Ogier",
    "Papin",
    "Pasquier",
    "Pichon",
    "Raimbault",
    "Renou",
    "Riou",
    "Robin",
    "Soulard",
    "Tessier",
    "Thibault",
    "Vallée",
    "Vincent",
]
FIRST_NAMES = [
    "Anne",
    "Benoît",
    "Christine",
    "David",
    "Élodie",
    "François",
    "Gaëlle",
    "Hugo",
    "Inès",
    "Jérôme",
    "Karine",
    "Laurent",
    "Marion",
    "Nadia",
    "Pierre",
    "Rachel",
    "Sylvain",
    "Virginie",
]
SIZE_BANDS = [B.B6_9, B.B10_19, B.B20_49, B.B20_49, B.B50_99, B.B100_199, B.B3_5, B.B200_249]
CONTACT_TITLES = [
    "Gérant",
    "Responsable des ressources humaines",
    "Directrice générale",
    "Directeur de site",
    "Chargée de recrutement",
    "Assistante de direction",
]
STREETS = [
    "rue de l'Industrie",
    "rue des Artisans",
    "ZA du Bocage",
    "avenue de la Gare",
    "rue du Commerce",
    "chemin des Vignes",
    "ZI Nord",
    "rue Pasteur",
    "route de Nantes",
    "impasse des Tisserands",
]
DIFFICULTIES = [
    "postes ouverts depuis plus de six mois sans candidature",
    "turn-over élevé pendant les premiers mois",
    "départs en retraite à remplacer d'ici un an",
    "hausse de l'activité et nouvelle équipe à constituer",
    "horaires postés jugés peu attractifs par les candidats",
    "candidats freinés par le logement et les transports",
]


def make_siret(index: int) -> str:
    """The SIRET of demo company `index`: an 8-digit body + Luhn key (SIREN), NIC "0001" + the key
    that makes the 14 digits Luhn-valid too. Never the La Poste SIREN (356000000)."""
    body = f"{SIREN_BASE + index:08d}"
    siren = body + luhn.calc_check_digit(body)
    base = siren + "0001"
    return base + luhn.calc_check_digit(base)


@dataclass
class CompanySpec:
    index: int
    site: PilotSite
    position: int  # rank of the company among those of its site (drives roles and states)
    siret: str
    name: str
    naf_code: str
    size_band: str
    commune: str
    postcode: str
    territory: Territory
    job: str
    address: str = ""
    contact_name: str = ""
    contact_title: str = ""
    contact_email: str = ""
    contact_phone: str = ""
    curated: bool = False
    summary: str = ""


# --- States of the seeded cases ------------------------------------------------------------------

# The curated companies of each site (12) go through every state; the pattern is rotated per site.
CURATED_STATES = [
    S.ACTIVE,
    S.PROPOSED,
    S.ENROLLED,
    S.DIAGNOSED,
    S.FOLLOW_UP,
    S.CLOSED,
    S.REFUSED,
    S.ACTIVE,
    S.WITHDRAWN,
    S.CLOSED,
    S.DIAGNOSED,
    S.PROPOSED,
]
# Generated companies: a weighted cycle of 20.
GENERATED_STATES = (
    [S.PROPOSED] * 2
    + [S.ENROLLED] * 2
    + [S.DIAGNOSED] * 2
    + [S.ACTIVE] * 5
    + [S.FOLLOW_UP] * 3
    + [S.CLOSED] * 3
    + [S.REFUSED]
    + [S.WITHDRAWN] * 2
)
OUTCOMES = [
    CaseOutcome.NEEDS_MET,
    CaseOutcome.PARTLY_MET,
    CaseOutcome.NEEDS_MET,
    CaseOutcome.NOT_MET,
    CaseOutcome.COMPANY_LEFT,
]
REFUSAL_REASONS = [
    "Les besoins relèvent d'un recrutement courant déjà traité par l'agence : pas d'accompagnement renforcé.",
    "L'entreprise est située hors du périmètre du site pilote.",
    "Le site a priorisé des entreprises aux difficultés plus aiguës pour cette vague.",
]
WITHDRAWAL_REASONS = [
    "L'entreprise a finalement pourvu ses postes par ses propres moyens.",
    "Changement de direction : l'entreprise suspend ses projets de recrutement.",
    "L'entreprise ne donne plus suite aux sollicitations.",
]
EXTRA_NEED_CATEGORIES = [
    C.TRAINING,
    C.MOBILITY,
    C.HOUSING,
    C.HR_SUPPORT,
    C.INSERTION,
    C.CHILDCARE,
    C.ORIENTATION,
    C.OTHER,
]
INTERVENTION_KINDS = [
    InterventionKind.MEETING,
    InterventionKind.JOB_DATING,
    InterventionKind.COMPANY_VISIT,
    InterventionKind.INFORMATION_SESSION,
    InterventionKind.RECRUITMENT_SESSION,
    InterventionKind.TRAINING_SESSION,
]
INTERVENTION_OUTCOMES = [
    "Rencontre réalisée : fiche de poste revue, offre rediffusée.",
    "Huit candidats reçus, deux retenus pour une immersion.",
    "Visite de l'atelier avec les candidats ; une embauche en CDI.",
    "Session d'information suivie par douze personnes.",
    "Trois recrutements en contrat de professionnalisation.",
]
# Path of transitions to reach each state in bulk mode: (transition, target, actor).
BULK_PATHS = {
    S.PROPOSED: [],
    S.REFUSED: [("refuse", S.REFUSED, "animator")],
    S.ENROLLED: [("enrol", S.ENROLLED, "animator")],
    S.DIAGNOSED: [("enrol", S.ENROLLED, "animator"), ("diagnose", S.DIAGNOSED, "referent")],
    S.ACTIVE: [
        ("enrol", S.ENROLLED, "animator"),
        ("diagnose", S.DIAGNOSED, "referent"),
        ("activate", S.ACTIVE, "referent"),
    ],
    S.FOLLOW_UP: [
        ("enrol", S.ENROLLED, "animator"),
        ("diagnose", S.DIAGNOSED, "referent"),
        ("activate", S.ACTIVE, "referent"),
        ("follow_up", S.FOLLOW_UP, "referent"),
    ],
    S.CLOSED: [
        ("enrol", S.ENROLLED, "animator"),
        ("diagnose", S.DIAGNOSED, "referent"),
        ("activate", S.ACTIVE, "referent"),
        ("follow_up", S.FOLLOW_UP, "referent"),
        ("close", S.CLOSED, "referent"),
    ],
    S.WITHDRAWN: [("enrol", S.ENROLLED, "animator"), ("withdraw", S.WITHDRAWN, "referent")],
}


def need_description(category: str, job: str) -> str:
    texts = {
        C.RECRUITMENT: f"Recruter des {job} en CDI.",
        C.TRAINING: f"Former des candidats sans expérience pour des postes de {job}.",
        C.INSERTION: "Ouvrir deux postes à des personnes éloignées de l'emploi, avec un tutorat.",
        C.ORIENTATION: f"Faire découvrir ces métiers ({job}) aux jeunes et à leurs familles.",
        C.HR_SUPPORT: "Structurer l'accueil et l'intégration des nouveaux salariés pour les fidéliser.",
        C.HOUSING: "Trouver des logements temporaires pour des alternants et des salariés venus de loin.",
        C.MOBILITY: "Solution de transport pour des salariés sans permis, en horaires postés.",
        C.CHILDCARE: "Garde d'enfants en horaires décalés pour des salariées en équipe du matin.",
        C.OTHER: "Aider le conjoint d'un futur salarié à trouver un emploi sur le territoire.",
    }
    return texts[category]


# --- Service requests of the demo cases ----------------------------------------------------------
# Each request follows a scenario: where it stands now and how it got there (see
# `Command.request_steps`). Active cases show every stage of the flow: the scenarios of
# ACTIVE_FIRST go, in this order, to the first requests that can take them (a re-routing needs two
# providers of the category in the company's territory), then ACTIVE_ROTATION turns.
WAITING = "waiting"  # in the queue of the provider chosen by the routing
WAITING_SOON = "waiting_soon"  # in the queue, response deadline within about a business day
WAITING_OVERDUE = "waiting_overdue"  # in the queue, response deadline passed: the timer is due
CLAIMED = "claimed"  # taken by an agent of the provider
CLAIMED_OVERDUE = "claimed_overdue"  # taken, never answered, response deadline passed
ACCEPTED = "accepted"  # accepted, interventions planned (one done, one to come)
DELIVERED = "delivered"  # delivered, waiting for the referent's validation
VALIDATED = "validated"  # closed by the referent, with the results of the delivery
REROUTED = "rerouted"  # declined by a first provider who suggested another, now in its queue
REROUTED_VALIDATED = "rerouted_validated"  # the same, then delivered by the second one and closed
UNROUTABLE = "unroutable"  # declined by every provider: waiting for the animators (dispatch)
CANCELLED = "cancelled"  # cancelled by the referent while waiting
ACCEPTED_CANCELLED = "accepted_cancelled"  # cancelled after the first intervention, nobody hired

ACTIVE_FIRST = [
    WAITING_OVERDUE,
    ACCEPTED,
    CLAIMED,
    DELIVERED,
    UNROUTABLE,
    WAITING_SOON,
    REROUTED,
    CANCELLED,
    CLAIMED_OVERDUE,
    VALIDATED,
    WAITING,
]
ACTIVE_ROTATION = [ACCEPTED, WAITING, DELIVERED, CLAIMED, VALIDATED, WAITING_SOON, UNROUTABLE, CANCELLED]
# Scenarios whose opening names the toolbox service (hence the provider and its response time).
EXPLICIT_SERVICE = {WAITING_SOON, WAITING_OVERDUE, CLAIMED_OVERDUE, REROUTED, REROUTED_VALIDATED}
# Scenarios that go through the routing beyond the first provider.
ROUTED_FURTHER = {REROUTED, REROUTED_VALIDATED, UNROUTABLE}


def request_brief(category: str, job: str, quantity: int | None) -> str:
    texts = {
        C.RECRUITMENT: (
            f"Présélectionner des {job} pour {plural(quantity or 1, 'poste')} à pourvoir et organiser les "
            "entretiens avec l'entreprise."
        ),
        C.TRAINING: f"Monter une formation courte avant l'embauche de candidats sans expérience ({job}).",
        C.INSERTION: "Présenter des personnes accompagnées motivées par le métier, avec un suivi en poste.",
        C.ORIENTATION: f"Faire découvrir le métier ({job}) à des jeunes : visite de l'atelier et immersions.",
        C.HR_SUPPORT: "Aider le dirigeant à structurer l'accueil et l'intégration des nouveaux salariés.",
        C.HOUSING: "Trouver des logements temporaires pour deux alternants et un salarié venu de loin.",
        C.MOBILITY: "Proposer une solution de transport à des salariés sans permis, en horaires postés.",
        C.CHILDCARE: "Trouver des places de garde en horaires décalés pour des salariées en équipe du matin.",
        C.OTHER: "Accompagner le conjoint d'un futur salarié dans sa recherche d'emploi sur le territoire.",
    }
    return texts[category]


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count > 1 else ''}"


def request_result(category: str, seed: int) -> dict:
    """What the provider declares at delivery: a text and, where they apply, the figures."""
    candidates, hires, trainings = 3 + seed % 6, 1 + seed % 3, 2 + seed % 5
    if category == C.RECRUITMENT:
        return {
            "result_text": f"{plural(candidates, 'candidat')} présentés après évaluation, "
            f"{plural(hires, 'recrutement')} en CDI.",
            "candidates": candidates,
            "hires": hires,
        }
    if category == C.TRAINING:
        return {
            "result_text": f"Session montée avec l'organisme de formation : {plural(trainings, 'personne')} "
            f"en formation, {plural(min(hires, trainings), 'embauche')} prévue à l'issue.",
            "candidates": trainings + 2,
            "hires": min(hires, trainings),
            "trainings": trainings,
        }
    if category == C.INSERTION:
        return {
            "result_text": f"{plural(candidates, 'personne')} présentées, "
            f"{plural(hires, 'embauche')} avec un tuteur désigné dans l'équipe.",
            "candidates": candidates,
            "hires": hires,
        }
    texts = {
        C.ORIENTATION: "Visite de l'atelier et immersions : quinze jeunes accueillis, deux candidatures "
        "en alternance.",
        C.HR_SUPPORT: "Diagnostic RH remis au dirigeant : livret d'accueil et parcours d'intégration créés.",
        C.HOUSING: "Trois logements temporaires trouvés pour les nouveaux salariés, de un à six mois.",
        C.MOBILITY: "Deux véhicules en location solidaire pendant trois mois ; covoiturage organisé.",
        C.CHILDCARE: "Trois places réservées en horaires décalés pour les salariées de l'équipe du matin.",
        C.OTHER: "Le conjoint a rencontré trois employeurs du territoire ; un contrat est signé.",
    }
    return {"result_text": texts[category]}


# Interventions of a provider, per category: (kind, notes, outcome once done).
REQUEST_INTERVENTIONS = {
    C.RECRUITMENT: [
        (
            InterventionKind.RECRUITMENT_SESSION,
            "Session de recrutement par simulation sur le plateau technique.",
            "Dix candidats évalués, quatre retenus pour un entretien.",
        ),
        (
            InterventionKind.JOB_DATING,
            "Job dating dans les locaux de l'entreprise.",
            "Huit candidats rencontrés, deux promesses d'embauche.",
        ),
    ],
    C.TRAINING: [
        (
            InterventionKind.INFORMATION_SESSION,
            "Réunion d'information collective sur la formation.",
            "Douze personnes présentes, six inscrites aux tests.",
        ),
        (
            InterventionKind.TRAINING_SESSION,
            "Démarrage de la formation au centre, avec une période dans l'entreprise.",
            "Formation lancée, tuteurs de l'entreprise désignés.",
        ),
    ],
    C.INSERTION: [
        (
            InterventionKind.MEETING,
            "Rencontre entre le futur tuteur et les conseillers.",
            "Postes et tutorat présentés, quatre personnes repérées.",
        ),
        (
            InterventionKind.JOB_DATING,
            "Rencontres entre l'entreprise et les personnes accompagnées.",
            "Quatre personnes reçues, deux immersions programmées.",
        ),
    ],
    C.ORIENTATION: [
        (
            InterventionKind.COMPANY_VISIT,
            "Visite de l'atelier avec un groupe de jeunes.",
            "Quinze jeunes accueillis, quatre demandes d'immersion.",
        ),
        (
            InterventionKind.INFORMATION_SESSION,
            "Présentation des métiers de l'entreprise au collège.",
            "Deux classes de 3e rencontrées, stages d'observation proposés.",
        ),
    ],
}
DEFAULT_REQUEST_INTERVENTIONS = [
    (
        InterventionKind.MEETING,
        "Rendez-vous avec le dirigeant dans l'entreprise.",
        "Besoins précisés, plan d'action validé avec le dirigeant.",
    ),
    (
        InterventionKind.MEETING,
        "Point d'étape avec l'entreprise et les salariés concernés.",
        "Solutions présentées, mise en œuvre engagée.",
    ),
]
DECLINES = [
    (DeclineReason.NO_CAPACITY, ""),
    (
        DeclineReason.OTHER,
        "Nos conseillers sont mobilisés sur un plan de reclassement jusqu'à la fin du mois.",
    ),
    (DeclineReason.ALREADY_SUPPORTED, ""),
    (DeclineReason.OUT_OF_SCOPE, ""),
]
SUGGESTED_DECLINE = (
    DeclineReason.OTHER,
    "Notre partenaire est mieux placé pour ce besoin : nous le lui confions.",
)
SEND_BACK_COMMENT = "Merci de joindre le bilan des entretiens (candidats reçus et suites données)."
CANCEL_REASONS = [
    "L'entreprise a finalement recruté par ses propres moyens.",
    "Le poste est gelé jusqu'au prochain budget : l'entreprise reviendra vers nous.",
]
CANCEL_REASON_NOBODY_HIRED = (
    "Aucun des candidats présentés n'a été retenu : l'entreprise suspend ce recrutement."
)
CANCEL_REASON_COMPANY_LEFT = "L'entreprise ne donne plus suite aux sollicitations."
CANCEL_REASON_NEED_DROPPED = "L'entreprise a mis ce besoin de côté pour se concentrer sur ses recrutements."


def hours(count: float) -> datetime.timedelta:
    return datetime.timedelta(hours=count)


def days(count: float) -> datetime.timedelta:
    return datetime.timedelta(days=count)


def timeline(seed: int, steps: int, now: datetime.datetime, spread_days: int = 21) -> list[datetime.datetime]:
    """`steps` increasing, timezone-aware moments ending a little before `now`, a few days apart."""
    moment = now - datetime.timedelta(
        days=seed * 5 % spread_days, hours=1 + seed * 7 % 9, minutes=seed * 13 % 60
    )
    moments = [moment]
    for step in range(steps - 1):
        moment = moment - datetime.timedelta(days=4 + (seed + 3 * step) % 15, hours=(seed * (step + 1)) % 8)
        moments.append(moment)
    return moments[::-1]


def batched(iterable, size):
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Command(BaseCommand):
    help = (
        "Crée les données de démonstration (idempotent) : lance seed_region, puis organisations "
        "partenaires, boîte à outils, comptes de démonstration (mot de passe commun "
        f"{DEMO_PASSWORD}), entreprises fictives et leurs dossiers dans tous les états. "
        f"Jusqu'à {SERVICE_PATH_MAX} entreprises, les dossiers passent par les services métier "
        "(journal des transitions réaliste, plafond des sites respecté). Au-delà (volumes de test "
        f"de charge), seules les {len(CURATED)} entreprises de référence passent par les services ; "
        "les autres sont insérées en masse (bulk_create par lots) avec leur état, une ligne de "
        "journal par étape et un besoin, sans demande de service, SANS tenir compte du plafond des "
        "sites. Les dossiers en accompagnement, en suivi ou clôturés créés par les services reçoivent "
        "leurs demandes de service à toutes les étapes du circuit (dont une ou deux au délai de "
        "réponse dépassé, que le prochain passage des minuteries transmet aux animateurs). Une "
        "nouvelle exécution ne recrée rien (les SIRET existants sont ignorés, avec leurs demandes)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--companies",
            type=int,
            default=DEFAULT_COMPANIES,
            help=(
                f"Nombre d'entreprises (une par dossier), {DEFAULT_COMPANIES} par défaut. Au-delà de "
                f"{SERVICE_PATH_MAX} : insertion en masse, plafond des sites ignoré, pas de demandes "
                f"de service pour les entreprises insérées en masse (seules les {len(CURATED)} "
                "entreprises de référence en ont)."
            ),
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Taille des lots de l'insertion en masse ({DEFAULT_BATCH_SIZE} par défaut).",
        )
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help=f"Remet le mot de passe {DEMO_PASSWORD} sur les comptes de démonstration existants.",
        )
        parser.add_argument(
            "--accounts-only",
            action="store_true",
            help="Affiche seulement le tableau des comptes de démonstration, sans rien créer.",
        )

    # --- Entry point ---------------------------------------------------------------------------

    def handle(self, *args, **options):
        if options["accounts_only"]:
            self.print_accounts()
            return
        count = options["companies"]
        if count < 0:
            raise CommandError("--companies doit être positif ou nul.")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size doit être au moins 1.")
        self.verbosity = options["verbosity"]
        if settings.PRODUCTION:
            # Demo accounts share a published password and include a superuser: never in production.
            raise CommandError(
                "seed_demo crée des comptes fictifs au mot de passe public : refusé en production "
                "(DJANGO_ENV=production)."
            )

        call_command("seed_region", verbosity=self.verbosity, stdout=self.stdout, stderr=self.stderr)
        before = self.counts()
        self.now = timezone.now()
        self.today = timezone.localdate(self.now)

        with transaction.atomic():
            self.seed_organisations()
            self.seed_users(reset_passwords=options["reset_passwords"])
        self.load_context()

        if count <= SERVICE_PATH_MAX:
            service_indices, bulk_indices = range(count), range(0)
        else:
            service_indices, bulk_indices = range(min(count, len(CURATED))), range(len(CURATED), count)
        self.seed_cases_with_services(service_indices)
        self.seed_cases_in_bulk(bulk_indices, options["batch_size"])
        # Dates were moved into the past and cases inserted in bulk: the board's figures of every
        # case are recomputed from its requests and its last activity (two UPDATEs).
        board.refresh_cases(Case.objects.all())
        if count and count <= SERVICE_PATH_MAX:
            self.seed_reviews()

        after = self.counts()
        if self.verbosity >= 1:
            self.print_summary(before, after)
            self.print_accounts()

    # --- Weekly reviews -------------------------------------------------------------------------

    def seed_reviews(self):
        """Each pilot site with animators gets its review schedule and, once, last week's review,
        closed through the real services: a decision on the first item, an action item for the
        referent of the second (a task on their « My tasks », carried over to this week's review)."""
        from cockpit import services as cockpit_services
        from cockpit.models import WeeklyReview

        for site in PilotSite.objects.order_by("pk"):
            animator = User.objects.filter(animated_sites__site=site, is_active=True).order_by("pk").first()
            if animator is None or WeeklyReview.objects.filter(site=site).exists():
                continue
            cockpit_services.review_schedule_save(
                actor=animator,
                site=site,
                weekday=1,
                time=datetime.time(10, 0),
                duration_minutes=60,
                video_link=f"https://webconf.numerique.gouv.fr/revue-{site.slug}",
            )
            weekly = cockpit_services.review_open(actor=animator, site=site, now=self.now - days(7))
            items = list(weekly.items.select_related("case").order_by("position")[:2])
            if items:
                cockpit_services.review_entry_add(
                    actor=animator,
                    item=items[0],
                    kind="decision",
                    text="Situation suivie\u00a0: le référent fait le point à la prochaine revue.",
                )
            if len(items) > 1:
                cockpit_services.review_entry_add(
                    actor=animator,
                    item=items[1],
                    kind="action",
                    text="Relancer l’entreprise et proposer une visite avec le partenaire.",
                    owner=items[1].case.referent,
                    due_on=self.today + datetime.timedelta(days=5),
                )
            cockpit_services.review_close(actor=animator, weekly=weekly)

    # --- Reference data ------------------------------------------------------------------------

    def seed_organisations(self):
        territories = {territory.name: territory for territory in Territory.objects.all()}
        departments = {department.code: department for department in Department.objects.all()}
        for spec in ORGANISATIONS:
            organisation, created = Organisation.objects.get_or_create(
                name=spec["name"],
                defaults={
                    "kind": spec["kind"],
                    "department": departments.get(spec["department"]),
                    "serves_whole_region": spec["department"] is None and not spec["territories"],
                },
            )
            served = [territories[name] for name in spec["territories"]]
            if created:
                organisation.territories.set(served)
            for name, category, days, description in spec["services"]:
                service, created = ToolboxService.objects.get_or_create(
                    provider=organisation,
                    name=name,
                    defaults={"category": category, "response_time_days": days, "description": description},
                )
                if created:
                    # A regional body's service is offered on every territory.
                    service.territories.set(served or territories.values())

    def seed_users(self, *, reset_passwords: bool):
        specs = user_specs()
        usernames = [spec["username"] for spec in specs]
        existing = set(User.objects.filter(username__in=usernames).values_list("username", flat=True))
        # One hash for every demo account: the hasher costs about a second per call.
        hashed = make_password(DEMO_PASSWORD) if reset_passwords or len(existing) < len(specs) else None
        organisations = {organisation.name: organisation for organisation in Organisation.objects.all()}
        sites = {site.slug: site for site in PilotSite.objects.all()}
        territories = {territory.name: territory for territory in Territory.objects.all()}
        for spec in specs:
            user, _created = User.objects.get_or_create(
                username=spec["username"],
                defaults={
                    "first_name": spec["first_name"],
                    "last_name": spec["last_name"],
                    "email": spec["username"],
                    "is_staff": bool(spec.get("admin")),
                    "is_superuser": bool(spec.get("admin")),
                    "password": hashed,
                },
            )
            for name, can_be_referent, job_title in spec.get("memberships", []):
                Membership.objects.get_or_create(
                    user=user,
                    organisation=organisations[name],
                    defaults={"can_be_referent": can_be_referent, "job_title": job_title},
                )
            if "animates" in spec:
                slug, role = spec["animates"]
                if slug in sites:
                    SiteAnimator.objects.get_or_create(user=user, site=sites[slug], defaults={"role": role})
            for name in spec.get("observes", []):
                TerritoryObserver.objects.get_or_create(user=user, territory=territories[name])
        if reset_passwords:
            User.objects.filter(username__in=usernames).update(password=hashed)

    def load_context(self):
        """Fresh user objects (their roles are cached by `rules.user_roles`), the sites, and who
        can act on each site: referents of an organisation serving it, its animators, partner agents."""
        usernames = [spec["username"] for spec in user_specs()]
        self.users = {user.pk: user for user in User.objects.filter(username__in=usernames, is_active=True)}
        self.sites = list(
            PilotSite.objects.select_related("department", "territory").order_by("department__code", "slug")
        )
        self.sites_by_slug = {site.slug: site for site in self.sites}
        self.territories = {territory.name: territory for territory in Territory.objects.all()}
        served_sites = {
            organisation_id: set(
                PilotSite.objects.filter(rules.sites_served_by_q([organisation_id])).values_list(
                    "pk", flat=True
                )
            )
            for organisation_id in Organisation.objects.values_list("pk", flat=True)
        }

        def serves(organisation_id, site):
            return site.pk in served_sites[organisation_id]  # the same rule as case_propose

        memberships = list(
            Membership.objects.filter(user_id__in=self.users, is_active=True, organisation__is_active=True)
            .select_related("organisation")
            .order_by("user__username", "organisation__name")
        )
        self.local_referents, self.regional_referents, self.agents, self.animators = {}, {}, {}, {}
        for site in self.sites:
            for membership in memberships:
                pair = (self.users[membership.user_id], membership.organisation)
                if not serves(membership.organisation_id, site):
                    continue
                if not membership.can_be_referent:
                    self.agents.setdefault(site.pk, []).append(pair)
                elif not membership.organisation.serves_whole_region:
                    self.local_referents.setdefault(site.pk, []).append(pair)
                else:
                    self.regional_referents.setdefault(site.pk, []).append(pair)
        for animator in SiteAnimator.objects.filter(user_id__in=self.users).order_by(
            "role", "user__username"
        ):
            self.animators.setdefault(animator.site_id, []).append(self.users[animator.user_id])
        # Who acts for an organisation on the requests routed to it: its agents, else its referents.
        agents, referents = {}, {}
        for membership in memberships:
            group = referents if membership.can_be_referent else agents
            group.setdefault(membership.organisation_id, []).append(self.users[membership.user_id])
        self.acting = {**referents, **agents}
        # The toolbox offer of each territory: active services of active providers with someone to
        # answer, per (territory, category); and the categories whose every provider is staffed
        # (the routing may then be left to choose).
        self.offers, unstaffed = {}, set()
        services_offered = (
            ToolboxService.objects.filter(is_active=True, provider__is_active=True)
            .select_related("provider")
            .prefetch_related("territories")
            .order_by("provider__name", "name", "pk")
        )
        for service in services_offered:
            for territory in service.territories.all():
                key = (territory.pk, service.category)
                if service.provider_id in self.acting:
                    self.offers.setdefault(key, []).append(service)
                else:
                    unstaffed.add(key)
        self.fully_staffed = set(self.offers) - unstaffed
        self.scenarios_to_show = list(ACTIVE_FIRST)
        self.rotation = 0
        self.fixed_moments = {}

    def referent_for(self, site, position):
        """(user, organisation) acting as referent: the site's local referents in turn, and every
        seventh case a referent of a regional body (OPCO...)."""
        local = self.local_referents.get(site.pk, [])
        regional = self.regional_referents.get(site.pk, [])
        if regional and (not local or position % 7 == 6):
            return regional[(position // 7) % len(regional)]
        if local:
            return local[position % len(local)]
        return None

    # --- Companies -----------------------------------------------------------------------------

    def company_spec(self, index: int) -> CompanySpec | None:
        sites = self.sites_by_slug
        if index < len(CURATED):
            slug, position, (name, naf, size, commune_name, job) = CURATED[index]
            site = sites.get(slug)
            if site is None:
                return None
            commune = next(entry for entry in SITE_AREAS[slug] if entry[0] == commune_name)
            curated = True
        else:
            if not self.sites:
                return None
            site = self.sites[index % len(self.sites)]
            position = len(CURATED_COMPANIES.get(site.slug, [])) + index // len(self.sites)
            prefix, naf, job = ACTIVITIES[index % len(ACTIVITIES)]
            name = f"{prefix} {SURNAMES[(index // len(ACTIVITIES) * 7 + index) % len(SURNAMES)]}"
            size = SIZE_BANDS[index % len(SIZE_BANDS)]
            area = SITE_AREAS.get(site.slug) or [(site.name, "", site.territory.name)]
            commune = area[(index // 3) % len(area)]
            curated = False
        commune_name, postcode, territory_name = commune
        contact_first = FIRST_NAMES[index * 7 % len(FIRST_NAMES)]
        contact_last = SURNAMES[index * 11 % len(SURNAMES)]
        domain = slugify(name)[:40].strip("-") or "entreprise"
        return CompanySpec(
            index=index,
            site=site,
            position=position,
            siret=make_siret(index),
            name=name,
            naf_code=naf,
            size_band=size,
            commune=commune_name,
            postcode=postcode,
            territory=self.territories.get(territory_name, site.territory),
            job=job,
            address=f"{1 + index * 17 % 120} {STREETS[index % len(STREETS)]}",
            contact_name=f"{contact_first} {contact_last}",
            contact_title=CONTACT_TITLES[index % len(CONTACT_TITLES)],
            contact_email=f"{slugify(contact_first)}.{slugify(contact_last)}@{domain}.example",
            # 02 61 91 xx xx: a range reserved by ARCEP for fiction.
            contact_phone=f"02 61 91 {index // 100 % 100:02d} {index % 100:02d}",
            curated=curated,
            summary=f"Difficultés à recruter des {job} : {DIFFICULTIES[index % len(DIFFICULTIES)]}.",
        )

    def target_state(self, spec: CompanySpec) -> str:
        if spec.curated:
            slugs = list(CURATED_COMPANIES)
            return CURATED_STATES[(spec.position + slugs.index(spec.site.slug)) % len(CURATED_STATES)]
        return GENERATED_STATES[(spec.index // max(len(self.sites), 1)) % len(GENERATED_STATES)]

    # --- Service path --------------------------------------------------------------------------

    def seed_cases_with_services(self, indices):
        specs = [spec for spec in (self.company_spec(index) for index in indices) if spec is not None]
        existing = set(
            Company.objects.filter(siret__in=[s.siret for s in specs]).values_list("siret", flat=True)
        )
        taken = {site.pk: Case.objects.filter(site=site).occupying_places().count() for site in self.sites}
        for spec in specs:
            if spec.siret in existing:
                continue
            referent = self.referent_for(spec.site, spec.position)
            if referent is None:
                continue
            state = self.target_state(spec)
            animators = self.animators.get(spec.site.pk, [])
            # Withdrawn cases: half after the diagnosis (they took a place for a while).
            late_withdrawal = state == S.WITHDRAWN and spec.index % 2 == 0
            needs_place = state in ENROLLED_CASE_STATES or state == S.CLOSED or late_withdrawal
            if not animators and state != S.PROPOSED:
                state, needs_place = S.PROPOSED, False
            if needs_place and taken[spec.site.pk] >= spec.site.enrolment_cap:
                # The site is full: the company waits (proposed) or its late withdrawal becomes early.
                state = S.WITHDRAWN if state == S.WITHDRAWN else S.PROPOSED
                late_withdrawal = needs_place = False
            animator = animators[spec.position % len(animators)] if animators else None
            consent_later = state != S.PROPOSED and spec.index % 4 == 1
            with transaction.atomic():
                case = self.build_case(spec, state, referent, animator, late_withdrawal, consent_later)
                self.backdate(case, spec.index, consent_later)
                self.add_interventions(case, spec, referent)
                self.add_comments(case, spec, referent[0], animator)
            if case.state in ENROLLED_CASE_STATES:
                taken[spec.site.pk] += 1

    def build_case(self, spec, state, referent_pair, animator, late_withdrawal, consent_later):
        referent, organisation = referent_pair
        index = spec.index
        consent = (state != S.PROPOSED or index % 2 == 0) and not consent_later
        case = services.case_propose(
            actor=referent,
            site=spec.site,
            referent_organisation=organisation,
            company=services.CompanyData(
                siret=spec.siret,
                name=spec.name,
                naf_code=spec.naf_code,
                size_band=spec.size_band,
                commune=spec.commune,
                territory_id=spec.territory.pk,
                address=spec.address,
                postcode=spec.postcode,
                contact_name=spec.contact_name,
                contact_email=spec.contact_email,
                contact_phone=spec.contact_phone,
            ),
            consent=consent,
            summary=spec.summary,
        )
        CompanyContact.objects.filter(company_id=case.company_id).update(job_title=spec.contact_title)

        def go(actor, name, **kwargs):
            return services.case_transition(
                actor=actor, case=case, name=name, expected_state=case.state, **kwargs
            )

        if state == S.PROPOSED:
            return case
        if state == S.REFUSED:
            return go(animator, "refuse", reason=REFUSAL_REASONS[index % len(REFUSAL_REASONS)])
        withdrawal = WITHDRAWAL_REASONS[index % len(WITHDRAWAL_REASONS)]
        if state == S.WITHDRAWN and not late_withdrawal:
            return go(referent, "withdraw", reason=withdrawal)
        if consent_later:
            case = services.case_record_consent(actor=referent, case=case)
        case = go(animator, "enrol")
        if state == S.ENROLLED:
            return case
        categories = [C.RECRUITMENT]
        if index % 3:
            categories.append(EXTRA_NEED_CATEGORIES[index % len(EXTRA_NEED_CATEGORIES)])
        if index % 4 == 0:
            categories.append(EXTRA_NEED_CATEGORIES[(index + 3) % len(EXTRA_NEED_CATEGORIES)])
        needs = [
            services.need_create(
                actor=referent,
                case=case,
                category=category,
                description=need_description(category, spec.job),
                quantity=1 + index % 5 if category == C.RECRUITMENT else None,
                deadline=self.today + datetime.timedelta(days=30 + 15 * (index % 6)) if rank == 0 else None,
            )
            for rank, category in enumerate(categories)
        ]
        case = go(referent, "diagnose")
        if state == S.DIAGNOSED:
            return case
        if state == S.WITHDRAWN:
            return go(referent, "withdraw", reason=withdrawal)
        outcome = OUTCOMES[index % len(OUTCOMES)]
        with_follow_up = state == S.FOLLOW_UP or (state == S.CLOSED and index % 2 == 0)
        plans = self.plan_requests(case, spec, state, outcome, with_follow_up, needs)
        if plans:
            # The first request starts the support (diagnosed -> active). Those of a case that moves
            # on to follow-up (which requires it) or closure are all closed or cancelled before.
            for plan in plans:
                self.run_request(case, referent, plan)
            case = Case.objects.get(pk=case.pk)
        else:
            case = go(referent, "activate")
            services.need_update(actor=referent, need=needs[0], status=NeedStatus.IN_PROGRESS)
        if state == S.ACTIVE:
            return case
        if with_follow_up:
            if not Need.objects.filter(pk=needs[0].pk, status=NeedStatus.MET).exists():
                services.need_update(actor=referent, need=needs[0], status=NeedStatus.MET)
            case = go(referent, "follow_up")
            if state == S.FOLLOW_UP:
                return case
        for rank, need in enumerate(needs):
            met = outcome == CaseOutcome.NEEDS_MET or (outcome == CaseOutcome.PARTLY_MET and rank == 0)
            services.need_update(
                actor=referent, need=need, status=NeedStatus.MET if met else NeedStatus.ABANDONED
            )
        return go(referent, "close", outcome=outcome)

    def backdate(self, case, seed, consent_later):
        """Spread the history of a case over past weeks (the services stamp everything "now").

        A case with requests has the moments of its activation (its first request) and of its next
        transitions fixed by `plan_requests`; the transitions before lead up to its activation."""
        transitions = list(case.transitions.order_by("pk"))
        fixed = self.fixed_moments.pop(case.pk, None)
        if fixed:
            first = next(rank for rank, transition in enumerate(transitions) if transition.name in fixed)
            moments = timeline(seed, first, fixed[transitions[first].name])[:first] + [
                fixed[transition.name] for transition in transitions[first:]
            ]
        else:
            moments = timeline(seed, len(transitions), self.now)
        at = {}
        for transition, moment in zip(transitions, moments, strict=True):
            CaseTransition.objects.filter(pk=transition.pk).update(at=moment)
            at.setdefault(transition.name, moment)
        # The notifications of the case's own steps (its proposal, the enrolment decision) follow
        # the transition written just before them; those of the requests are already in the past.
        real = [(transition.at, moment) for transition, moment in zip(transitions, moments, strict=True)]
        notified = {}
        for pk, created_at in Notification.objects.filter(case=case, created_at__gte=self.now).values_list(
            "pk", "created_at"
        ):
            moment = next((moment for when, moment in reversed(real) if when <= created_at), moments[0])
            notified.setdefault(moment, []).append(pk)
        for moment, pks in notified.items():
            Notification.objects.filter(pk__in=pks).update(created_at=moment, read_at=self.read_at(moment))
        last_request_event = RequestEvent.objects.filter(request__case=case).aggregate(last=Max("at"))["last"]
        values = {
            "created_at": moments[0],
            "last_activity_at": max(moments[-1], last_request_event or moments[-1]),
        }
        if case.consent_recorded_at is not None:
            recorded_later = consent_later and "enrol" in at
            values["consent_recorded_at"] = (
                at["enrol"] - datetime.timedelta(days=2) if recorded_later else moments[0]
            )
        if "enrol" in at:
            values["enrolled_at"] = at["enrol"]
        if case.closed_at is not None:
            values["closed_at"] = moments[-1]
        Case.objects.filter(pk=case.pk).update(**values)
        if "enrol" in at:
            case.needs.update(created_at=at["enrol"] + datetime.timedelta(days=1))
        Company.objects.filter(pk=case.company_id).update(created_at=moments[0])
        case.refresh_from_db()
        case.history = at

    def add_comments(self, case, spec, referent, animator):
        """A short past exchange on every other supported case: the referent mentions the animator,
        who answers. Written as history (the demo users have not accepted the charter yet, so the
        service, which checks that the author sees the case, would refuse them)."""
        if case.state not in (S.ACTIVE, S.FOLLOW_UP) or animator is None or spec.index % 2:
            return
        exchange = [
            (referent, f"@{handle_of(animator)} le dirigeant souhaite faire le point en revue hebdomadaire."),
            (animator, "Noté, je l'inscris à l'ordre du jour de la revue de jeudi."),
        ]
        for rank, (author, body) in enumerate(exchange):
            comment = CaseComment.objects.create(case=case, author=author, body=body)
            if rank == 0:
                comment.mentions.set([animator])
            CaseComment.objects.filter(pk=comment.pk).update(created_at=self.now - hours(30 - 6 * rank))

    def add_interventions(self, case, spec, referent_pair):
        if case.state not in (S.ACTIVE, S.FOLLOW_UP, S.CLOSED):
            return
        index = spec.index
        owners = [referent_pair, *self.agents.get(spec.site.pk, [])]
        started = timezone.localdate(case.history["activate"])
        # Past interventions happen between the start of the support and its end (or today).
        ended = timezone.localdate(case.closed_at) if case.closed_at else self.today
        span = max((ended - started).days, 0)

        def past(fraction):
            return started + datetime.timedelta(days=int(span * fraction))

        def add(rank, status, planned_on, outcome=""):
            owner, organisation = owners[(index + rank) % len(owners)]
            Intervention.objects.create(
                case=case,
                kind=INTERVENTION_KINDS[(index + rank) % len(INTERVENTION_KINDS)],
                planned_on=planned_on,
                owner=owner,
                owner_organisation=organisation,
                status=status,
                notes=f"Avec {spec.contact_name} ({spec.contact_title.lower()}).",
                outcome=outcome,
            )

        def outcome(rank):
            return INTERVENTION_OUTCOMES[(index + rank) % len(INTERVENTION_OUTCOMES)]

        if case.state == S.ACTIVE:
            if index % 2:
                add(0, InterventionStatus.DONE, past(0.5), outcome(0))
            add(1, InterventionStatus.PLANNED, self.today + datetime.timedelta(days=3 + index % 15))
        elif case.state == S.FOLLOW_UP:
            add(0, InterventionStatus.DONE, past(0.3), outcome(0))
            add(1, InterventionStatus.CANCELLED, past(0.6))
        else:
            add(0, InterventionStatus.DONE, past(0.2), outcome(0))
            add(1, InterventionStatus.DONE, past(0.7), outcome(1))
            if case.outcome in (CaseOutcome.NOT_MET, CaseOutcome.COMPANY_LEFT):
                add(2, InterventionStatus.CANCELLED, past(0.9))

    # --- Service requests (service path) ---------------------------------------------------------

    def plan_requests(self, case, spec, state, outcome, with_follow_up, needs):
        """The requests of a case about to start its support: one per need whose category the
        toolbox offers in the company's territory, each with its scenario and the moment of each
        step, the earliest first. Fixes the moments of the case's activation (its first request)
        and of its next transitions, for `backdate`."""
        if state not in (S.ACTIVE, S.FOLLOW_UP, S.CLOSED):
            return []
        territory_id = spec.territory.pk
        eligible = [
            (rank, need) for rank, need in enumerate(needs) if (territory_id, need.category) in self.offers
        ]
        if not eligible:
            return []
        index = spec.index
        later = (["follow_up"] if with_follow_up else []) + (["close"] if state == S.CLOSED else [])
        later_moments = timeline(index, len(later), self.now) if later else []
        plans = []
        for order, (rank, need) in enumerate(eligible):
            seed = index * 7 + rank * 3
            key = (territory_id, need.category)
            offered = self.offers[key]
            scenario = self.scenario_for(state, outcome, rank, key, seed)
            explicit = scenario in EXPLICIT_SERVICE or key not in self.fully_staffed or seed % 3 == 0
            service = offered[seed % len(offered)] if explicit else None
            providers = len({offer.provider_id for offer in offered})
            steps = self.request_steps(scenario, seed, providers, need.category)
            if scenario in (WAITING_SOON, WAITING_OVERDUE, CLAIMED_OVERDUE):
                start = self.opening_for_deadline(
                    service.response_time_days, seed, overdue=scenario != WAITING_SOON
                )
            else:
                if later:
                    # Everything is over a day or more before the case moves on.
                    end = later_moments[0] - days(1 + index % 3 + 2 * order) - hours(index % 7 + 5 * order)
                else:
                    end = self.now - self.time_since_last_step(scenario, seed)
                start = end - sum((gap for gap, _step in steps), datetime.timedelta())
            moments, moment = [], start
            for gap, _step in steps:
                moment += gap
                moments.append(moment)
            recorded = {
                step["id"]: moment
                for moment, (_gap, step) in zip(moments, steps, strict=True)
                if step["do"] == "record"
            }
            for _gap, step in steps:
                if step["do"] == "plan":
                    # Done interventions took place on the day they were recorded; the others are ahead.
                    step["on"] = (
                        timezone.localdate(recorded[step["id"]])
                        if step["id"] in recorded
                        else self.today + days(4 + seed % 15)
                    )
            plans.append(
                {
                    "need": need,
                    "seed": seed,
                    "service": service,
                    "category": need.category,
                    "brief": request_brief(need.category, spec.job, need.quantity),
                    "desired_date": need.deadline if state == S.ACTIVE else None,
                    "cancel_reason": self.cancel_reason(scenario, outcome, seed),
                    "steps": [(moment, step) for moment, (_gap, step) in zip(moments, steps, strict=True)],
                }
            )
        plans.sort(key=lambda plan: plan["steps"][0][0])
        self.fixed_moments[case.pk] = {
            "activate": plans[0]["steps"][0][0],
            **dict(zip(later, later_moments, strict=True)),
        }
        return plans

    def scenario_for(self, state, outcome, rank, key, seed):
        """Closed cases: the needs met were delivered and validated, the others cancelled. Cases in
        follow-up: every request validated. Active cases: every stage of the flow (see ACTIVE_FIRST)."""
        rerouting = len({offer.provider_id for offer in self.offers[key]}) > 1 and key in self.fully_staffed
        unroutable = key in self.fully_staffed  # every provider can decline
        if state == S.CLOSED:
            if outcome == CaseOutcome.NEEDS_MET or (outcome == CaseOutcome.PARTLY_MET and rank == 0):
                return REROUTED_VALIDATED if rerouting and seed % 3 == 1 else VALIDATED
            return ACCEPTED_CANCELLED if outcome == CaseOutcome.NOT_MET and rank == 0 else CANCELLED
        if state == S.FOLLOW_UP:
            return REROUTED_VALIDATED if rerouting and rank and seed % 2 else VALIDATED

        def feasible(scenario):
            if scenario not in ROUTED_FURTHER:
                return True
            return unroutable if scenario == UNROUTABLE else rerouting

        for scenario in self.scenarios_to_show:
            if feasible(scenario):
                self.scenarios_to_show.remove(scenario)
                return scenario
        while True:
            scenario = ACTIVE_ROTATION[self.rotation % len(ACTIVE_ROTATION)]
            self.rotation += 1
            if feasible(scenario):
                return scenario

    @staticmethod
    def request_steps(scenario, seed, providers, category):
        """The steps of a scenario, each with the time elapsed since the previous one."""
        steps = [(datetime.timedelta(), {"do": "open"})]
        if scenario in (REROUTED, REROUTED_VALIDATED):
            steps.append((hours(20 + seed % 30), {"do": "decline", "suggest": True}))
        if scenario == UNROUTABLE:
            # Every provider of the category in the territory declines in turn.
            steps += [
                (hours(6 + (seed + turn) % 30), {"do": "decline", "turn": turn}) for turn in range(providers)
            ]
        taken = {
            CLAIMED,
            CLAIMED_OVERDUE,
            ACCEPTED,
            DELIVERED,
            VALIDATED,
            REROUTED_VALIDATED,
            ACCEPTED_CANCELLED,
        }
        if scenario in taken:
            steps.append((hours(3 + seed % 22), {"do": "claim"}))
        if scenario in taken - {CLAIMED, CLAIMED_OVERDUE}:
            steps.append((hours(1 + seed % 5), {"do": "accept"}))
            done = 2 if category in (C.RECRUITMENT, C.TRAINING) and seed % 2 == 0 else 1
            if scenario == ACCEPTED:
                done = seed % 2  # then one more, planned ahead
            for rank in range(done):
                steps.append((days(1 + (seed + rank) % 2) + hours(seed % 4), {"do": "plan", "id": rank}))
                steps.append((days(4 + (seed + rank) % 5), {"do": "record", "id": rank}))
            if scenario == ACCEPTED:
                steps.append((days(1) + hours(seed % 6), {"do": "plan", "id": done}))
        if scenario in (DELIVERED, VALIDATED, REROUTED_VALIDATED):
            steps.append((days(1 + seed % 3) + hours(seed % 5), {"do": "deliver"}))
            if scenario != DELIVERED and seed % 4 == 0:
                # The referent first sends the delivery back for a missing piece.
                steps.append((days(1 + seed % 2), {"do": "send_back"}))
                steps.append((days(2) + hours(seed % 3), {"do": "deliver", "again": True}))
            if scenario != DELIVERED:
                steps.append((days(1 + seed % 4) + hours(seed % 6), {"do": "validate"}))
        if scenario in (CANCELLED, ACCEPTED_CANCELLED):
            steps.append((days(2 + seed % 5), {"do": "cancel"}))
        return steps

    @staticmethod
    def time_since_last_step(scenario, seed):
        """How long ago the last step of an active case's request happened."""
        return {
            WAITING: hours(2 + seed % 20),
            CLAIMED: hours(1 + seed % 6),
            REROUTED: hours(2 + seed % 10),
            ACCEPTED: days(1 + seed % 3),
            DELIVERED: days(1 + seed % 3) + hours(seed % 5),
            VALIDATED: days(2 + seed % 6),
            CANCELLED: days(1 + seed % 5),
            UNROUTABLE: days(1 + seed % 4),
        }[scenario]

    def opening_for_deadline(self, response_days, seed, *, overdue):
        """When to open a request so that its response deadline is now about a business day away,
        or (overdue) passed since a day or so."""
        start = self.now - hours(2 + seed % 5)
        if overdue:
            while add_business_days(start, response_days) > self.now - hours(20):
                start -= days(1)
        else:
            while add_business_days(start - days(1), response_days) > self.now + hours(4):
                start -= days(1)
        return start

    @staticmethod
    def cancel_reason(scenario, outcome, seed):
        if scenario == ACCEPTED_CANCELLED:
            return CANCEL_REASON_NOBODY_HIRED
        if outcome == CaseOutcome.COMPANY_LEFT:
            return CANCEL_REASON_COMPANY_LEFT
        if outcome in (CaseOutcome.PARTLY_MET, CaseOutcome.NOT_MET):
            return CANCEL_REASON_NEED_DROPPED
        return CANCEL_REASONS[seed % len(CANCEL_REASONS)]

    def member_of(self, organisation, seed):
        members = self.acting.get(organisation.pk)
        if not members:
            raise CommandError(f"Aucun compte de démonstration ne peut répondre pour {organisation}.")
        return members[seed % len(members)]

    def run_request(self, case, referent, plan):
        """Play the steps of a request through the services, as the users would, each acting within
        their rights; then move what each step stamped to its moment in the past."""
        seed, category = plan["seed"], plan["category"]
        interventions_spec = REQUEST_INTERVENTIONS.get(category, DEFAULT_REQUEST_INTERVENTIONS)
        request, agent, interventions = None, None, {}
        for moment, step in plan["steps"]:
            since = timezone.now()
            action = step["do"]
            if action == "open":
                request = request_services.request_open(
                    actor=referent,
                    case=case,
                    need=plan["need"],
                    brief=plan["brief"],
                    service=plan["service"],
                    category="" if plan["service"] else category,
                    desired_date=plan["desired_date"],
                )
            elif action == "claim":
                agent = self.member_of(request.provider, seed)
                request_services.task_claim(actor=agent, task_id=self.open_task(request, FLOW.review).pk)
            elif action == "accept":
                request = request_services.request_accept(
                    actor=agent, task_id=self.open_task(request, FLOW.review).pk
                )
            elif action == "decline":
                decliner = self.member_of(request.provider, seed + step.get("turn", 0))
                task_id = self.open_task(request, FLOW.review).pk
                request_services.task_claim(actor=decliner, task_id=task_id)
                suggested = None
                if step.get("suggest"):
                    reason, text = SUGGESTED_DECLINE
                    others = [offer.provider for offer in self.offers[(case.company.territory_id, category)]]
                    others = [other for other in others if other.pk != request.provider_id]
                    suggested = others[seed % len(others)]
                else:
                    reason, text = DECLINES[(seed + step.get("turn", 0)) % len(DECLINES)]
                request = request_services.request_decline(
                    actor=decliner,
                    task_id=task_id,
                    reason=reason,
                    reason_text=text,
                    suggested_organisation=suggested,
                )
            elif action == "plan":
                kind, notes, _outcome = interventions_spec[step["id"] % len(interventions_spec)]
                interventions[step["id"]] = request_services.intervention_plan(
                    actor=agent, request=request, kind=kind, planned_on=step["on"], notes=notes
                )
            elif action == "record":
                _kind, _notes, outcome = interventions_spec[step["id"] % len(interventions_spec)]
                request_services.intervention_record(
                    actor=agent,
                    intervention=interventions[step["id"]],
                    status=InterventionStatus.DONE,
                    outcome=outcome,
                )
            elif action == "deliver":
                result = request_result(category, seed)
                if step.get("again"):
                    result["result_text"] += " Bilan des entretiens joint."
                request = request_services.request_deliver(
                    actor=agent, task_id=self.open_task(request, FLOW.deliver).pk, **result
                )
            elif action in ("send_back", "validate"):
                request = request_services.request_validate(
                    actor=referent,
                    task_id=self.open_task(request, FLOW.validate).pk,
                    accept=action == "validate",
                    comment="" if action == "validate" else SEND_BACK_COMMENT,
                )
            elif action == "cancel":
                request = request_services.request_cancel(
                    actor=referent, request=request, reason=plan["cancel_reason"]
                )
            self.stamp(case, request.pk, action, since, moment)

    @staticmethod
    def open_task(request, node):
        return (
            Task.objects.filter(
                process_id=request.pk, flow_task=node, status__in=[STATUS.NEW, STATUS.ASSIGNED]
            )
            .order_by("-pk")
            .first()
        )

    REQUEST_STAMPS = (
        "opened_at",
        "routed_at",
        "accepted_at",
        "delivered_at",
        "validated_at",
        "created",
        "finished",
    )
    TASK_STAMPS = ("created", "assigned", "started", "finished")
    # Rows that only some steps write: the activation of the case (by its first request), the
    # declines, the interventions.
    STEP_ROWS = {
        "open": (CaseTransition, "case", "at"),
        "decline": (RequestDecline, "request__case", "at"),
        "plan": (Intervention, "case", "created_at"),
    }

    def stamp(self, case, request_id, action, since, moment):
        """Move to `moment` every timestamp that one step wrote since `since` (the services stamp
        "now"). The earlier steps are already in the past, so `>= since` finds this step's only."""
        request = ServiceRequest.objects.select_related("case__company", "service", "provider").get(
            pk=request_id
        )
        routed = request.routed_at is not None and request.routed_at >= since
        routed_at = moment
        if action == "open":
            # The request is opened then routed in the same step: both events get its moment.
            RequestEvent.objects.filter(
                request_id=request_id, at__gte=since, kind__in=[EventKind.ROUTED, EventKind.UNROUTABLE]
            ).update(at=routed_at)
        changes = {
            field: routed_at if field == "routed_at" else moment
            for field in self.REQUEST_STAMPS
            if getattr(request, field) is not None and getattr(request, field) >= since
        }
        deadline = None
        if routed and request.stage in (RequestStatus.WAITING, RequestStatus.CLAIMED):
            # The response deadline counts from the (back-dated) routing, and the review's timer
            # follows it. For the overdue scenarios this puts request.deadline and the timer's
            # Task.scheduled in the past on purpose: the next sweep of the timers (`make demo` runs
            # them in the server, or `manage.py workflow_timers`) escalates those requests to the
            # animators.
            deadline = add_business_days(routed_at, routing.response_days(request, request.provider))
            changes["deadline"] = deadline
        if changes:
            ServiceRequest.objects.filter(pk=request_id).update(**changes)
        tasks = Task.objects.filter(process_id=request_id).values_list(
            "pk", "flow_task_type", "status", *self.TASK_STAMPS
        )
        for pk, task_type, status, *stamps in tasks:
            values = {
                field: moment
                for field, value in zip(self.TASK_STAMPS, stamps, strict=True)
                if value is not None and value >= since
            }
            if deadline is not None and task_type == "TIMER" and status == STATUS.SCHEDULED:
                values["scheduled"] = deadline
            if values:
                Task.objects.filter(pk=pk).update(**values)
        RequestEvent.objects.filter(request_id=request_id, at__gte=since).update(at=moment)
        if action in self.STEP_ROWS:
            model, to_case, field = self.STEP_ROWS[action]
            model.objects.filter(**{to_case: case, f"{field}__gte": since}).update(**{field: moment})
        Notification.objects.filter(case=case, created_at__gte=since).update(
            created_at=moment, read_at=self.read_at(moment)
        )

    def read_at(self, moment):
        """Notifications of the past weeks have been read; those of the last days wait for their reader."""
        return moment + hours(3) if moment < self.now - days(3) else None

    # --- Bulk path (volumes) -------------------------------------------------------------------

    def seed_cases_in_bulk(self, indices, batch_size):
        if not indices:
            return
        total, created = len(indices), 0
        for number, chunk in enumerate(batched(indices, batch_size), start=1):
            specs = [spec for spec in (self.company_spec(index) for index in chunk) if spec is not None]
            existing = set(
                Company.objects.filter(siret__in=[s.siret for s in specs]).values_list("siret", flat=True)
            )
            specs = [s for s in specs if s.siret not in existing and self.referent_for(s.site, s.position)]
            if specs:
                with transaction.atomic():
                    self.bulk_chunk(specs, batch_size)
                created += len(specs)
            if self.verbosity >= 2 or (self.verbosity >= 1 and number % 10 == 0):
                done = min(number * batch_size, total)
                self.stdout.write(
                    f"  insertion en masse : {done}/{total} entreprises examinées, {created} créées"
                )

    def bulk_chunk(self, specs, batch_size):
        consent_version = settings.COMPANY_CONSENT_TEXT_VERSION
        companies, contacts, cases, plans = [], [], [], []
        for spec in specs:
            referent, organisation = self.referent_for(spec.site, spec.position)
            animators = self.animators.get(spec.site.pk, [])
            state = self.target_state(spec) if animators else S.PROPOSED
            animator = animators[spec.position % len(animators)] if animators else None
            path = BULK_PATHS[state]
            moments = timeline(spec.index, len(path) + 1, self.now, spread_days=120)
            at = {name: moment for (name, _target, _actor), moment in zip(path, moments[1:], strict=True)}
            company = Company(
                siret=spec.siret,
                name=spec.name,
                naf_code=spec.naf_code,
                size_band=spec.size_band,
                address=spec.address,
                postcode=spec.postcode,
                commune=spec.commune,
                territory=spec.territory,
                created_by=referent,
            )
            companies.append(company)
            contacts.append(
                CompanyContact(
                    company=company,
                    full_name=spec.contact_name,
                    job_title=spec.contact_title,
                    email=spec.contact_email,
                    phone=spec.contact_phone,
                )
            )
            with_consent = state != S.PROPOSED or spec.index % 2 == 0
            # Case.state is a protected FSM field: it can be given to the constructor, never set later.
            case = Case(
                company=company,
                site=spec.site,
                referent=referent,
                referent_organisation=organisation,
                state=state,
                summary=spec.summary,
                consent_recorded_at=moments[0] if with_consent else None,
                consent_recorded_by=referent if with_consent else None,
                consent_text_version=consent_version if with_consent else "",
                decision_reason=(
                    REFUSAL_REASONS[spec.index % len(REFUSAL_REASONS)]
                    if state == S.REFUSED
                    else WITHDRAWAL_REASONS[spec.index % len(WITHDRAWAL_REASONS)]
                    if state == S.WITHDRAWN
                    else ""
                ),
                outcome=OUTCOMES[spec.index % len(OUTCOMES)] if state == S.CLOSED else "",
                created_by=referent,
                enrolled_at=at.get("enrol"),
                closed_at=moments[-1] if state in (S.CLOSED, S.REFUSED, S.WITHDRAWN) else None,
                last_activity_at=moments[-1],
            )
            cases.append(case)
            plans.append((spec, path, moments, referent, animator))

        Company.objects.bulk_create(companies, batch_size=batch_size)
        for contact, case in zip(contacts, cases, strict=True):
            contact.company_id = contact.company.pk
            case.company_id = case.company.pk
        CompanyContact.objects.bulk_create(contacts, batch_size=batch_size)
        Case.objects.bulk_create(cases, batch_size=batch_size)

        transitions, needs = [], []
        for case, (spec, path, moments, referent, animator) in zip(cases, plans, strict=True):
            transitions.append(
                CaseTransition(
                    case_id=case.pk,
                    name="propose",
                    source="",
                    target=S.PROPOSED,
                    actor=referent,
                    at=moments[0],
                )
            )
            source = S.PROPOSED
            for (name, target, actor), moment in zip(path, moments[1:], strict=True):
                transitions.append(
                    CaseTransition(
                        case_id=case.pk,
                        name=name,
                        source=source,
                        target=target,
                        actor=animator if actor == "animator" else referent,
                        at=moment,
                        comment=case.decision_reason if name in ("refuse", "withdraw") else "",
                    )
                )
                source = target
            if any(name == "diagnose" for name, _target, _actor in path):
                status = {
                    S.ACTIVE: NeedStatus.IN_PROGRESS,
                    S.FOLLOW_UP: NeedStatus.IN_PROGRESS,
                    S.CLOSED: NeedStatus.MET,
                }.get(case.state, NeedStatus.OPEN)
                needs.append(
                    Need(
                        case_id=case.pk,
                        category=C.RECRUITMENT,
                        description=need_description(C.RECRUITMENT, spec.job),
                        quantity=1 + spec.index % 5,
                        status=status,
                        created_by=referent,
                    )
                )
        CaseTransition.objects.bulk_create(transitions, batch_size=batch_size)
        Need.objects.bulk_create(needs, batch_size=batch_size)
        # `created_at` is set to now by the insertion (auto_now_add): a case was proposed when its
        # first transition says, up to 120 days ago, not all of them this week (the weekly review's
        # agenda and the CLEFOP report read it).
        proposed = CaseTransition.objects.filter(case_id=OuterRef("pk"), name="propose").values("at")[:1]
        Case.objects.filter(pk__in=[case.pk for case in cases]).update(created_at=Subquery(proposed))
        # The same for the needs: recorded at the diagnosis.
        diagnosed = CaseTransition.objects.filter(case_id=OuterRef("case_id"), name="diagnose")
        diagnosed = diagnosed.values("at")[:1]
        Need.objects.filter(pk__in=[need.pk for need in needs]).update(
            created_at=Subquery(diagnosed), updated_at=Subquery(diagnosed)
        )

    # --- Output --------------------------------------------------------------------------------

    COUNTED = [
        ("organisations", Organisation),
        ("services de la boîte à outils", ToolboxService),
        ("comptes", User),
        ("entreprises", Company),
        ("dossiers", Case),
        ("transitions", CaseTransition),
        ("besoins", Need),
        ("interventions", Intervention),
        ("demandes de service", ServiceRequest),
    ]

    def counts(self):
        return {label: model.objects.count() for label, model in self.COUNTED}

    def print_summary(self, before, after):
        parts = [
            f"{after[label]} {label} (+{after[label] - before[label]})" for label, _model in self.COUNTED
        ]
        self.stdout.write(self.style.SUCCESS("Données de démonstration : " + ", ".join(parts) + "."))
        states = dict(Case.objects.order_by().values_list("state").annotate(n=Count("pk")))
        labels = ", ".join(f"{label.lower()} {states.get(value, 0)}" for value, label in S.choices)
        self.stdout.write(f"  dossiers par état : {labels}.")
        stages = dict(ServiceRequest.objects.order_by().values_list("stage").annotate(n=Count("pk")))
        labels = ", ".join(
            f"{label.lower()} {stages.get(value, 0)}" for value, label in RequestStatus.choices
        )
        overdue = Task.objects.filter(
            flow_task_type="TIMER", status=STATUS.SCHEDULED, scheduled__lte=timezone.now()
        ).count()
        self.stdout.write(
            f"  demandes par étape : {labels} ; délai de réponse dépassé (minuterie due) : {overdue}."
        )

    def print_accounts(self):
        accounts = demo_accounts()
        present = set(
            User.objects.filter(username__in=[a.username for a in accounts]).values_list(
                "username", flat=True
            )
        )
        header = ("Rôle", "Identifiant", "Nom", "Rattachement")
        rows = [
            (
                a.role_label,
                a.username + ("" if a.username in present else " (absent)"),
                a.full_name,
                a.attachment,
            )
            for a in accounts
        ]
        widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header) - 1)]

        def line(row):
            return "  ".join(value.ljust(width) for value, width in zip(row[:-1], widths, strict=True)) + (
                "  " + row[-1]
            )

        self.stdout.write("")
        self.stdout.write(
            self.style.MIGRATE_HEADING(f"Comptes de démonstration (mot de passe : {DEMO_PASSWORD})")
        )
        self.stdout.write(line(header))
        self.stdout.write(line(tuple("-" * len(value) for value in header)))
        for row in rows:
            self.stdout.write(line(row))
        if len(present) < len(accounts):
            self.stdout.write(
                self.style.WARNING(
                    "Des comptes sont absents : lancez « manage.py seed_demo » pour les créer."
                )
            )
        self.stdout.write("Chaque compte accepte la charte de confidentialité à sa première connexion.")
