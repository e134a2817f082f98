"""Helpers shared by the management commands of every app."""

from django.core.management.base import CommandError


def positive_int(value, option: str) -> int:
    """`value` (given on the command line or by call_command) as an integer ≥ 1, or a French
    CommandError naming the option."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise CommandError(f"{option} doit être un nombre entier (reçu : {value!r}).") from None
    if number < 1:
        raise CommandError(f"{option} doit être un entier supérieur ou égal à 1 (reçu : {value!r}).")
    return number
