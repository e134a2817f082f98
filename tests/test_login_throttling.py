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


# --- One account guessed from many addresses ---------------------------------------------------------


@pytest.fixture
def account(settings):
    """An account whose failures from many addresses are counted together (limit 4 here)."""
    settings.LOGIN_ACCOUNT_FAILURE_LIMIT = 4
    settings.LOGIN_ACCOUNT_MAX_DELAY_MINUTES = 15
    return UserFactory(username="cible@x.fr")


def sign_in_from(client, address, username, password):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def guess_from_many_addresses(client, username, count, first=1):
    """`count` wrong passwords, each from another address (never the per-address lock)."""
    for index in range(first, first + count):
        response = sign_in_from(client, f"203.0.113.{index}", username, "devine-le")
        assert response.status_code == 200, index


def age_failures(username, minutes):
    """Move the account's failures `minutes` into the past (instead of waiting)."""
    from datetime import timedelta

    from axes.models import AccessFailureLog
    from django.db.models import F

    AccessFailureLog.objects.filter(username=username).update(
        attempt_time=F("attempt_time") - timedelta(minutes=minutes)
    )


def test_guesses_from_many_addresses_make_the_account_wait_before_the_password_is_checked(client, account):
    guess_from_many_addresses(client, account.username, 4)
    # A fifth address: not locked by axes (first failure there), but the account now waits a minute,
    # whatever the password: it is not even checked.
    for password in ("devine-le", TEST_PASSWORD):
        response = sign_in_from(client, "198.51.100.7", account.username, password)
        assert response.status_code == 429
        assert response["Retry-After"] == "60"
        page = response.content.decode()
        assert "Trop de connexions ont échoué sur ce compte" in page
        assert "patientez 1 minute" in page
        assert "_auth_user_id" not in client.session
    from axes.models import AccessAttempt, AccessFailureLog

    assert AccessFailureLog.objects.filter(username=account.username).count() == 4  # not failures
    assert not AccessAttempt.objects.filter(ip_address="198.51.100.7").exists()


def test_the_delay_doubles_with_each_failure_up_to_the_cap_then_lets_the_right_password_in(client, account):
    guess_from_many_addresses(client, account.username, 4)
    waits = []
    for index in range(6):
        age_failures(account.username, 60)  # the delay has passed: one attempt goes through
        assert sign_in_from(client, f"198.51.100.{index}", account.username, "devine-le").status_code == 200
        response = sign_in_from(client, f"198.51.100.{index + 100}", account.username, "devine-le")
        assert response.status_code == 429
        waits.append(int(response["Retry-After"]))
    assert [round(wait / 60) for wait in waits] == [2, 4, 8, 15, 15, 15]
    age_failures(account.username, 15)
    assert sign_in_from(client, "198.51.100.200", account.username, TEST_PASSWORD).status_code == 302


def test_the_real_user_signs_in_at_once_from_an_address_they_used(client, account):
    """Someone else's guesses do not lock the user out: at the office (where they signed in last
    week) the right password works at once."""
    assert sign_in_from(client, "192.0.2.10", account.username, TEST_PASSWORD).status_code == 302
    client.logout()
    guess_from_many_addresses(client, account.username, 4)
    assert sign_in_from(client, "198.51.100.7", account.username, TEST_PASSWORD).status_code == 429
    assert sign_in_from(client, "192.0.2.10", account.username, TEST_PASSWORD).status_code == 302


def test_attempts_arriving_together_when_the_delay_ends_get_one_try(rf, account):
    """Many addresses waiting for the delay to end: the first takes the slot, the others wait."""
    from axes.handlers.proxy import AxesProxyHandler

    from casework import login_throttle

    for index in range(4):
        request = rf.post("/connexion/", REMOTE_ADDR=f"203.0.113.{index}")
        AxesProxyHandler.update_request(request)
        AxesProxyHandler.user_login_failed(None, {"username": account.username}, request)
    age_failures(account.username, 5)
    answers = [
        login_throttle.seconds_to_wait(rf.post("/", REMOTE_ADDR=f"198.51.100.{i}"), account.username)
        for i in range(3)
    ]
    assert answers[0] == 0 and answers[1] > 0 and answers[2] > 0


def test_old_failures_and_unknown_accounts(client, account):
    """Failures older than a day are forgotten; an account that does not exist is throttled exactly
    like one that does (nothing tells them apart)."""
    guess_from_many_addresses(client, account.username, 4)
    age_failures(account.username, 24 * 60 + 1)
    assert sign_in_from(client, "198.51.100.7", account.username, TEST_PASSWORD).status_code == 302
    client.logout()
    guess_from_many_addresses(client, "personne@x.fr", 4, first=50)
    response = sign_in_from(client, "198.51.100.8", "personne@x.fr", "devine-le")
    assert response.status_code == 429 and response["Retry-After"] == "60"
