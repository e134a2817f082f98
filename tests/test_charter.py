"""Acceptance of the confidentiality charter (service level)."""

import pytest
from django.conf import settings

from casework import services
from casework.exceptions import StaleStateError
from casework.models import Case, CharterAcceptance, User
from tests.factories import CaseFactory, UserFactory

pytestmark = pytest.mark.django_db

CURRENT = settings.CONFIDENTIALITY_CHARTER_VERSION


@pytest.fixture
def newcomer():
    return UserFactory(charter=False)


def test_factory_user_without_charter_has_not_accepted_it(newcomer):
    assert newcomer.accepted_charter_version == ""
    assert not newcomer.has_accepted_current_charter


@pytest.mark.parametrize("version", [None, CURRENT])
def test_accepting_records_the_version_and_updates_the_user(newcomer, version):
    services.charter_accept(actor=newcomer, version=version)

    acceptance = CharterAcceptance.objects.get(user=newcomer)
    assert acceptance.version == CURRENT
    assert acceptance.accepted_at is not None
    assert newcomer.accepted_charter_version == CURRENT  # the instance of the request
    assert User.objects.get(pk=newcomer.pk).accepted_charter_version == CURRENT
    assert User.objects.get(pk=newcomer.pk).has_accepted_current_charter


def test_accepting_a_version_that_is_no_longer_current_is_refused(newcomer):
    with pytest.raises(StaleStateError):
        services.charter_accept(actor=newcomer, version="2020-01")

    assert not CharterAcceptance.objects.exists()
    assert User.objects.get(pk=newcomer.pk).accepted_charter_version == ""
    assert newcomer.accepted_charter_version == ""


def test_accepting_twice_is_harmless(newcomer):
    services.charter_accept(actor=newcomer)
    first = CharterAcceptance.objects.get(user=newcomer)

    services.charter_accept(actor=newcomer)

    assert list(CharterAcceptance.objects.filter(user=newcomer)) == [first]
    assert CharterAcceptance.objects.get(user=newcomer).accepted_at == first.accepted_at
    assert User.objects.get(pk=newcomer.pk).accepted_charter_version == CURRENT


def test_accepting_a_new_version_keeps_the_history():
    user = UserFactory(accepted_charter_version="2025-01")
    CharterAcceptance.objects.create(user=user, version="2025-01")
    assert not user.has_accepted_current_charter

    services.charter_accept(actor=user)

    assert sorted(CharterAcceptance.objects.filter(user=user).values_list("version", flat=True)) == sorted(
        ["2025-01", CURRENT]
    )
    assert user.has_accepted_current_charter


def test_accepting_the_charter_opens_access_to_own_cases(site):
    case = CaseFactory(site=site, referent=UserFactory(charter=False))
    referent = User.objects.get(pk=case.referent_id)
    assert not Case.objects.visible_to(referent).exists()

    services.charter_accept(actor=referent)

    assert list(Case.objects.visible_to(referent)) == [case]
