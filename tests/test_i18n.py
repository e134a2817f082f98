"""French first: the catalogue covers every string of the interface and the compiled file that
Django reads matches it."""

import gettext
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.utils import translation

PO = Path(settings.BASE_DIR) / "locale" / "fr" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")


def _entries():
    return [entry for entry in polib.pofile(str(PO)) if not entry.obsolete]


def test_french_catalogue_is_complete():
    missing = [e.msgid for e in _entries() if not e.translated() or "fuzzy" in e.flags]
    assert not missing, f"untranslated or fuzzy: {missing}"


def test_compiled_catalogue_matches_the_po_file():
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    stale = []
    for entry in _entries():
        if entry.msgid_plural:
            got = compiled.ngettext(entry.msgid, entry.msgid_plural, 2)
            expected = entry.msgstr_plural[1]
        else:
            got, expected = compiled.gettext(entry.msgid), entry.msgstr
        if got != expected:
            stale.append(entry.msgid)
    assert not stale, f"django.mo is stale, run `make messages`: {stale[:5]}"


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="gettext tools (xgettext) not installed")
def test_every_source_string_is_in_the_catalogue(tmp_path):
    """Extract the strings again from a copy of the sources: none may be missing from the .po."""
    root = Path(settings.BASE_DIR)
    # Every Python package of the project (a new app is picked up by itself), the templates and the
    # catalogue; not the tests, whose strings are not part of the interface.
    packages = [p.name for p in root.iterdir() if (p / "__init__.py").exists() and p.name != "tests"]
    for name in (*packages, "templates", "locale"):
        shutil.copytree(root / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "manage.py", tmp_path / "manage.py")
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "fr", "--no-obsolete"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path / "var"), "PYTHONPATH": str(tmp_path)},
    )
    extracted = {e.msgid for e in polib.pofile(str(tmp_path / "locale/fr/LC_MESSAGES/django.po")) if e.msgid}
    known = {e.msgid for e in _entries()}
    assert not extracted - known, f"run `make messages` and translate: {sorted(extracted - known)[:10]}"


def test_interface_speaks_french_by_default():
    assert settings.LANGUAGE_CODE == "fr"
    with translation.override("fr"):
        assert translation.gettext("Propose a company") == "Proposer une entreprise"
