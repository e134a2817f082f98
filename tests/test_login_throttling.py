"""Sign-in throttling: repeated wrong passwords lock the account out from that address for a while,
with a French page; a correct password then does not get in either, and nothing is leaked."""

import pytest
from django.urls import reverse

from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def sign_in(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_five_wrong_passwords_lock_the_account_out_then_the_right_one_is_refused(client, settings):
    user = UserFactory(username="claire.martin@demo.territoires.fr")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, user.username, "mauvais-mot-de-passe").status_code == 200
    locked = sign_in(client, user.username, "mauvais-mot-de-passe")
    assert locked.status_code == 429
    assert "Connexion temporairement bloquée" in locked.content.decode()
    again = sign_in(client, user.username, TEST_PASSWORD)
    assert again.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_success_before_the_limit_resets_the_count(client, settings):
    user = UserFactory(username="paul.bernard@demo.territoires.fr")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, user.username, "mauvais")
    assert sign_in(client, user.username, TEST_PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, user.username, "mauvais").status_code == 200


def test_another_account_is_not_locked_by_someone_elses_failures(client, settings):
    victim, other = UserFactory(username="victime@x.fr"), UserFactory(username="autre@x.fr")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, victim.username, "mauvais")
    assert sign_in(client, other.username, TEST_PASSWORD).status_code == 302
