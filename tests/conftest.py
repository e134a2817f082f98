"""Shared fixtures of the test suite.

The world they build (each fixture creates only what it needs):

- `site`: pilot site "Ancenis" in Loire-Atlantique (44), territory "Pays d'Ancenis";
- `other_site`: pilot site "Saumur" in Maine-et-Loire (49), territory "Saumurois";
- `referent_organisation` serves the territory of `site`; `referent` is a member who may be
  referent; `agent` is a member of another organisation serving `site` who may NOT be referent;
- `other_referent`: referent of an organisation serving `other_site` only;
- `animator`: CDET of `site`; `observer`: member of the CLEFOP of `site`'s territory;
- `admin_user`: platform administrator (superuser) — overrides pytest-django's fixture of the
  same name, so `admin_client` logs this one in;
- `case`: a proposed case of `referent` on `site`, consent not recorded yet.

Every user has accepted the current confidentiality charter (use `UserFactory(charter=False)`
for one who has not). Log a user in with `login(client, user)`.
"""

import pytest

from tests.factories import (
    CaseFactory,
    MembershipFactory,
    OrganisationFactory,
    PilotSiteFactory,
    SiteAnimatorFactory,
    TerritoryObserverFactory,
    UserFactory,
)


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """The production hasher costs ~0.5 s per hash; tests do not need it. No audit anchors either
    (the default file under var/ belongs to the demo database): a test that needs them sets
    AUDIT_ANCHOR_PATH to a file of its own."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AUDIT_ANCHOR_PATH = None


@pytest.fixture
def site(db):
    """Pilot site "Ancenis" (department 44, territory "Pays d'Ancenis")."""
    return PilotSiteFactory(
        name="Ancenis",
        slug="ancenis",
        department__code="44",
        department__name="Loire-Atlantique",
        territory__name="Pays d'Ancenis",
    )


@pytest.fixture
def other_site(db):
    """Pilot site "Saumur" (department 49, territory "Saumurois"): nothing shared with `site`."""
    return PilotSiteFactory(
        name="Saumur",
        slug="saumur",
        department__code="49",
        department__name="Maine-et-Loire",
        territory__name="Saumurois",
    )


@pytest.fixture
def referent_organisation(site):
    """An organisation serving the territory of `site`."""
    return OrganisationFactory(name="France Travail Ancenis", territories=[site.territory])


@pytest.fixture
def referent(referent_organisation):
    """A user who may act as referent for `referent_organisation` (which serves `site`)."""
    user = UserFactory(username="referent", first_name="Claire", last_name="Durand")
    MembershipFactory(user=user, organisation=referent_organisation, can_be_referent=True)
    return user


@pytest.fixture
def other_referent(other_site):
    """A referent whose organisation serves `other_site` only."""
    organisation = OrganisationFactory(name="Mission locale du Saumurois", territories=[other_site.territory])
    user = UserFactory(username="other-referent", first_name="Paul", last_name="Bernard")
    MembershipFactory(user=user, organisation=organisation, can_be_referent=True)
    return user


@pytest.fixture
def agent(site):
    """A partner agent: member of an organisation serving `site`, not allowed to be referent."""
    organisation = OrganisationFactory(name="CCI Nantes Saint-Nazaire", territories=[site.territory])
    user = UserFactory(username="agent", first_name="Lucie", last_name="Petit")
    MembershipFactory(user=user, organisation=organisation, can_be_referent=False)
    return user


@pytest.fixture
def animator(site):
    """The CDET animator of `site`."""
    return SiteAnimatorFactory(site=site, user__username="animator", user__last_name="Animatrice").user


@pytest.fixture
def observer(site):
    """A territory observer (CLEFOP) of `site`'s territory: aggregated figures only."""
    return TerritoryObserverFactory(territory=site.territory, user__username="observer").user


@pytest.fixture
def admin_user(db):
    """A platform administrator who accepted the charter (overrides pytest-django's fixture)."""
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def case(site, referent):
    """A proposed case of `referent` on `site`, without the company's consent yet."""
    return CaseFactory(site=site, referent=referent)


@pytest.fixture
def login():
    """`login(client, user)` logs the user in (no password check) and returns the client."""

    def _login(client, user):
        client.force_login(user)
        return client

    return _login
