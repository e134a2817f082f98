"""Validation of French company identifiers, with messages users can act on."""

import datetime
import re

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _
from stdnum import exceptions as stdnum_exceptions
from stdnum.fr import siret as stdnum_siret

_NAF_RE = re.compile(r"^([0-9]{2})\.?([0-9]{2})([A-Za-z])$")


def normalise_siret(value: str) -> str:
    """Return the 14-digit SIRET or raise ValidationError with a French-first message.

    python-stdnum checks the length, the digits, the Luhn key and the La Poste exception
    (SIREN 356 000 000, whose establishments use a different checksum).
    """
    raw = (value or "").strip()
    if not stdnum_siret.compact(raw):
        raise ValidationError(
            _("A SIRET number has exactly 14 digits (you typed %(count)s)."),
            code="siret_length",
            params={"count": 0},
        )
    try:
        return stdnum_siret.validate(raw)
    except stdnum_exceptions.InvalidLength:
        raise ValidationError(
            _("A SIRET number has exactly 14 digits (you typed %(count)s)."),
            code="siret_length",
            params={"count": len(stdnum_siret.compact(raw))},
        ) from None
    except stdnum_exceptions.InvalidFormat:
        raise ValidationError(_("A SIRET number contains digits only."), code="siret_format") from None
    except stdnum_exceptions.InvalidChecksum:
        raise ValidationError(
            _(
                "This SIRET number is not valid: its check digit is wrong. Check it on the company's Kbis."
            ),
            code="siret_checksum",
        ) from None
    except stdnum_exceptions.ValidationError:
        raise ValidationError(_("This SIRET number is not valid."), code="siret_invalid") from None


def validate_siret(value: str) -> None:
    normalise_siret(value)


def normalise_naf(value: str) -> str:
    """Return the NAF (APE) code in its normal form "NN.NNX" or raise ValidationError."""
    match = _NAF_RE.match((value or "").strip().replace(" ", ""))
    if not match:
        raise ValidationError(
            _('A NAF code is 4 digits and a letter, for example "25.62B" or "2562B".'),
            code="naf_format",
        )
    return f"{match.group(1)}.{match.group(2)}{match.group(3).upper()}"


def validate_naf(value: str) -> None:
    normalise_naf(value)


# Dates of a plan (a need's "wanted by", a request's "wanted by", an intervention's day): from the
# year before the pilot sites opened to five years ahead. Anything else is a typo (0026 for 2026,
# 9999) that would sort wrongly and reach calendars.
PLAN_DATE_MIN = datetime.date(2020, 1, 1)
PLAN_YEARS_AHEAD = 5


def validate_plan_date(value) -> None:
    if value is None:
        return
    today = timezone.localdate()
    latest = today.replace(year=today.year + PLAN_YEARS_AHEAD, day=min(today.day, 28))
    if not PLAN_DATE_MIN <= value <= latest:
        raise ValidationError(
            _("Choose a date between %(first)s and %(last)s."),
            code="plan_date_range",
            params={
                "first": date_format(PLAN_DATE_MIN, "SHORT_DATE_FORMAT"),
                "last": date_format(latest, "SHORT_DATE_FORMAT"),
            },
        )
