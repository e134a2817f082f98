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


def test_a_deactivated_users_open_session_ends_at_once(client):
    """An administrator deactivates someone who is signed in: their very next request is sent to
    the login page, without waiting for the session to expire."""
    user = UserFactory(username="partant@x.fr")
    assert sign_in(client, user.username, TEST_PASSWORD).status_code == 302
    assert client.get(reverse("home")).status_code == 200
    user.is_active = False
    user.save(update_fields=["is_active"])
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_passwords_are_checked_by_djangos_validators(settings):
    """Short, common or all-digit passwords are refused when an account's password is set."""
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    user = UserFactory(username="nouveau@x.fr")
    for weak in ("court", "password1234", "123456789012", "nouveau@x.fr"):
        with pytest.raises(ValidationError):
            validate_password(weak, user)
    validate_password("Ponts-de-Cé-2026-Loire", user)


def test_a_megabyte_password_is_refused_before_any_hashing(client):
    """A huge password would keep a worker busy hashing it: the form refuses it first, with
    Django's usual French message naming the limit."""
    user = UserFactory(username="long@x.fr")
    response = sign_in(client, user.username, "x" * 1_000_000)
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert "1024" in response.content.decode()
