"""SIRET and NAF validation: what a referent types in the proposal form."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation
from stdnum import luhn
from stdnum.fr import siret as stdnum_siret

from casework.validators import normalise_naf, normalise_siret, validate_naf, validate_siret
from tests.factories import LA_POSTE_SIREN, make_siret

VALID_SIRET = "73282932000074"
# A La Poste establishment: SIREN 356 000 000, digit sum 45 (multiple of 5), Luhn key wrong.
LA_POSTE_VALID = "35600000049837"
LA_POSTE_INVALID = "35600000049838"  # digit sum 46
LA_POSTE_HEAD_OFFICE = "35600000000048"


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def _error(value, normalise=normalise_siret) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        normalise(value)
    return info.value


# --- SIRET ----------------------------------------------------------------------------------------


def test_valid_siret_is_returned_as_14_digits():
    assert normalise_siret(VALID_SIRET) == VALID_SIRET
    assert validate_siret(VALID_SIRET) is None


@pytest.mark.parametrize("typed", ["732 829 320 00074", " 73282932000074 ", "732 829 320 000 74"])
def test_siret_typed_with_spaces_is_compacted(typed):
    assert normalise_siret(typed) == VALID_SIRET


def test_siret_with_a_wrong_check_digit_is_refused_and_the_message_says_so():
    error = _error("73282932000075")
    assert error.code == "siret_checksum"
    assert "check digit" in " ".join(error.messages)


@pytest.mark.parametrize("typed, count", [("7328293200007", 13), ("732829320000740", 15), ("7328 2932", 8)])
def test_siret_of_wrong_length_is_refused_with_the_count(typed, count):
    error = _error(typed)
    assert error.code == "siret_length"
    assert "14" in error.messages[0]
    assert f"({count})" in error.messages[0] or f"typed {count}" in error.messages[0]


@pytest.mark.parametrize("typed", ["7328293200007A", "73282932O00074", "SIRET-12345678"])
def test_siret_with_letters_is_refused(typed):
    error = _error(typed)
    assert error.code == "siret_format"
    assert "digits only" in error.messages[0]


@pytest.mark.parametrize("typed", ["", "   ", None])
def test_empty_siret_is_refused(typed):
    error = _error(typed)
    assert error.code == "siret_length"  # "has exactly 14 digits (you typed 0)"
    assert error.params == {"count": 0}


def test_validate_siret_raises_for_invalid_values():
    with pytest.raises(ValidationError):
        validate_siret("12345678901234")


def test_la_poste_siret_is_valid_when_digit_sum_is_a_multiple_of_5_although_luhn_fails():
    assert LA_POSTE_VALID.startswith(LA_POSTE_SIREN)
    # The example really exercises the exception: Luhn fails, the sum rule holds.
    assert not luhn.is_valid(LA_POSTE_VALID)
    assert sum(map(int, LA_POSTE_VALID)) % 5 == 0
    assert stdnum_siret.is_valid(LA_POSTE_VALID)
    assert normalise_siret(LA_POSTE_VALID) == LA_POSTE_VALID


def test_la_poste_siret_whose_digit_sum_is_not_a_multiple_of_5_is_refused():
    assert sum(map(int, LA_POSTE_INVALID)) % 5 != 0
    assert _error(LA_POSTE_INVALID).code == "siret_checksum"


def test_la_poste_head_office_is_valid():
    assert normalise_siret(LA_POSTE_HEAD_OFFICE) == LA_POSTE_HEAD_OFFICE


def test_la_poste_establishment_passing_luhn_only_is_refused():
    # The sum rule, not Luhn, applies to La Poste establishments other than the head office.
    value = "35600000000055"
    assert luhn.is_valid(value) and sum(map(int, value)) % 5 != 0
    assert _error(value).code == "siret_checksum"


def test_make_siret_produces_distinct_valid_numbers():
    numbers = [make_siret(n) for n in (*range(500), 9_999_999)]
    assert len(set(numbers)) == len(numbers)
    for number in numbers:
        assert len(number) == 14 and number.isdigit()
        assert luhn.is_valid(number[:9]) and luhn.is_valid(number)
        assert not number.startswith(LA_POSTE_SIREN)
        assert normalise_siret(number) == number
    assert make_siret(42) == make_siret(42)


# --- NAF ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["25.62B", "2562B", "25.62b", " 25.62B ", "2562b", "25 62 B"])
def test_naf_code_is_normalised(typed):
    assert normalise_naf(typed) == "25.62B"
    assert validate_naf(typed) is None


@pytest.mark.parametrize("typed", ["256B", "25.62", "AB.CDE", "25.625B", "2562BB", "25-62B", "", None])
def test_malformed_naf_code_is_refused(typed):
    error = _error(typed, normalise_naf)
    assert error.code == "naf_format"
    assert "25.62B" in error.messages[0]


@pytest.mark.parametrize("typed", ["٢٥.٦٢B", "２５６２B"])
def test_naf_with_non_ascii_digits_is_refused(typed):
    with pytest.raises(ValidationError):
        normalise_naf(typed)


@pytest.mark.parametrize("typed", ["0026-05-12", "1999-12-31", "9999-12-31"])
def test_a_plan_date_out_of_range_is_refused_in_french(client, login, site, referent, typed):
    """A typo in a "wanted by" date (0026 for 2026) is explained, and nothing is saved."""
    from django.urls import reverse

    from casework.models import Need
    from tests.factories import CaseFactory

    case = CaseFactory(site=site, referent=referent, enrolled=True)
    response = login(client, referent).post(
        reverse("need_create", kwargs={"public_id": case.public_id}),
        {"category": "housing", "description": "Logement", "quantity": 1, "deadline": typed},
    )
    assert response.status_code == 200
    assert "Choisissez une date entre le 01/01/2020 et le" in response.content.decode()
    assert not Need.objects.filter(case=case).exists()


def test_a_plan_date_in_range_is_accepted():
    from django.utils import timezone

    from casework.validators import validate_plan_date

    validate_plan_date(timezone.localdate())
    validate_plan_date(None)
