"""Strict parsing of environment variables.

Every setting that comes from the environment goes through one of these helpers, so that a
malformed value stops start-up with a message naming the variable instead of being silently
replaced by a default.
"""

import os
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on", "oui"}
_FALSE = {"0", "false", "no", "off", "non"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value is not None else None


def fail(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"Variable d'environnement {name} invalide : {value!r} (attendu : {expected}). "
        f"/ Invalid environment variable {name}: {value!r} (expected: {expected})."
    )


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = _raw(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(
                f"La variable d'environnement {name} est obligatoire. "
                f"/ The environment variable {name} is required."
            )
        return default
    return value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise fail(name, value, "1/0, true/false, yes/no, on/off")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise fail(name, value, "un entier / an integer") from None
    if minimum is not None and number < minimum:
        raise fail(name, value, f"un entier supérieur ou égal à {minimum}")
    if maximum is not None and number > maximum:
        raise fail(name, value, f"un entier inférieur ou égal à {maximum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None or value == "":
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise fail(name, value, "une liste séparée par des virgules, sans élément vide")
    return items


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(name)
    if value is None or value == "":
        return default
    if value not in choices:
        raise fail(name, value, " | ".join(choices))
    return value


def env_url(name: str, schemes: tuple[str, ...]) -> str | None:
    """An URL whose scheme is one of `schemes` and which names a host (or a path for sqlite)."""
    value = _raw(name)
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise fail(name, value, "une URL " + " ou ".join(f"{s}://…" for s in schemes))
    if not parts.scheme.startswith("sqlite") and not parts.hostname and not parts.path:
        raise fail(name, value, "une URL avec un hôte")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise fail(name, value, "une URL avec un port numérique") from None
    return value


def env_file(name: str, default: str | None) -> str | None:
    """The absolute path of a file (not a directory), `off` for none, or `default` when unset."""
    value = _raw(name)
    if value is None or value == "":
        return default
    if value.lower() == "off":
        return None
    if not os.path.isabs(value):
        raise fail(name, value, "un chemin absolu de fichier, ou off / an absolute file path, or off")
    if os.path.isdir(value):
        raise fail(name, value, "un fichier, pas un dossier / a file, not a directory")
    return value
