"""Strict parsing of environment variables (config/env.py) and start-up failures of the settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_file, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
NAME = "TDS_TEST_VARIABLE"


def refused(function, value, monkeypatch, *args, **kwargs) -> str:
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured) as info:
        function(NAME, *args, **kwargs)
    message = str(info.value)
    assert NAME in message
    return message


@pytest.fixture(autouse=True)
def _unset(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)


# --- env_bool -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "True", "YES", "yes", " on "])
def test_env_bool_true(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    assert env_bool(NAME, default=False) is True


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "no", "off"])
def test_env_bool_false(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    assert env_bool(NAME, default=True) is False


@pytest.mark.parametrize("default", [True, False])
def test_env_bool_unset_gives_the_default(default):
    assert env_bool(NAME, default=default) is default


@pytest.mark.parametrize("value", ["maybe", "2", "vrai", "y e s"])
def test_env_bool_refuses_anything_else(monkeypatch, value):
    assert value in refused(env_bool, value, monkeypatch)


# --- env_int --------------------------------------------------------------------------------------


def test_env_int(monkeypatch):
    assert env_int(NAME, 25) == 25
    monkeypatch.setenv(NAME, "")
    assert env_int(NAME, 25) == 25
    monkeypatch.setenv(NAME, " 42 ")
    assert env_int(NAME, 25, minimum=1, maximum=100) == 42


@pytest.mark.parametrize("value", ["abc", "4.5", "12px"])
def test_env_int_refuses_non_integers(monkeypatch, value):
    refused(env_int, value, monkeypatch, 25)


@pytest.mark.parametrize("value", ["0", "101", "-5"])
def test_env_int_refuses_out_of_range(monkeypatch, value):
    refused(env_int, value, monkeypatch, 25, minimum=1, maximum=100)


@pytest.mark.parametrize("value", ["1", "100"])
def test_env_int_accepts_the_bounds(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    assert env_int(NAME, 25, minimum=1, maximum=100) == int(value)


# --- env_url --------------------------------------------------------------------------------------

SCHEMES = ("postgres", "postgresql", "sqlite")


@pytest.mark.parametrize(
    "value",
    [
        "postgres://postgres@127.0.0.1:5432/territoires",
        "postgresql://user:secret@db.example.org/tds",
        "sqlite:////tmp/tds.sqlite3",
    ],
)
def test_env_url_accepts_well_formed_urls(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    assert env_url(NAME, SCHEMES) == value


def test_env_url_unset_is_none():
    assert env_url(NAME, SCHEMES) is None


@pytest.mark.parametrize(
    "value",
    [
        "mysql://x",
        "not a url",
        "postgres://db.example.org:port/tds",
        "postgres://db:99999999999/tds",
        "postgres://",
    ],
)
def test_env_url_refuses_malformed_urls(monkeypatch, value):
    refused(env_url, value, monkeypatch, SCHEMES)


# --- env_list, env_choice, env_str ----------------------------------------------------------------


def test_env_list(monkeypatch):
    assert env_list(NAME, ["localhost"]) == ["localhost"]
    monkeypatch.setenv(NAME, "tds.example.org, www.tds.example.org")
    assert env_list(NAME, []) == ["tds.example.org", "www.tds.example.org"]


@pytest.mark.parametrize("value", ["a,,b", "a,b,", ",a", "a, ,b"])
def test_env_list_refuses_empty_items(monkeypatch, value):
    refused(env_list, value, monkeypatch, [])


def test_env_choice(monkeypatch):
    assert env_choice(NAME, "demo", ("demo", "production")) == "demo"
    monkeypatch.setenv(NAME, "production")
    assert env_choice(NAME, "demo", ("demo", "production")) == "production"


@pytest.mark.parametrize("value", ["staging", "prod", "Production"])
def test_env_choice_refuses_unknown_values(monkeypatch, value):
    message = refused(env_choice, value, monkeypatch, "demo", ("demo", "production"))
    assert "production" in message


def test_env_str_required(monkeypatch):
    with pytest.raises(ImproperlyConfigured) as info:
        env_str(NAME, required=True)
    assert NAME in str(info.value)
    monkeypatch.setenv(NAME, "  value  ")
    assert env_str(NAME, required=True) == "value"


# --- Start-up of the settings (subprocess) --------------------------------------------------------

SETTINGS_VARIABLES = (
    "DJANGO_ENV",
    "DJANGO_DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "SQLITE_PATH",
    "REDIS_URL",
    "EMAIL_MODE",
    "EMAIL_PORT",
    "EMAIL_TIMEOUT",
    "OUTBOX_CLAIM_TIMEOUT",
    "LOG_LEVEL",
    "SESSION_COOKIE_AGE",
    "CASE_LIST_PAGE_SIZE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SITE_URL",
    "CHANNEL_ENCRYPTION_KEYS",
    "AUDIT_CHAIN_KEY",
    "AUDIT_CHAIN_KEY_FALLBACKS",
    "AUDIT_ANCHOR_PATH",
    "DATABASE_PREPARED_STATEMENTS",
    "DATABASE_POOL",
    "DATABASE_POOL_MIN_SIZE",
    "DATABASE_POOL_MAX_SIZE",
    "DATABASE_POOL_TIMEOUT",
    "WS_MAX_SOCKETS_PER_USER",
    "LOGIN_ACCOUNT_FAILURE_LIMIT",
    "LOGIN_ACCOUNT_MAX_DELAY_MINUTES",
)
# A production-grade audit chain key (at least 32 characters, not SECRET_KEY).
AUDIT_KEY = "audit-" + "Hq7!" * 10


def start_django(tmp_path, code="import django; django.setup()", **variables) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=str(tmp_path / "var"), **variables)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_starts_when_configured(tmp_path):
    """The control of the tests below: the same start-up succeeds with a valid configuration."""
    result = start_django(
        tmp_path,
        DJANGO_ENV="production",
        SECRET_KEY="x" * 50,
        AUDIT_CHAIN_KEY=AUDIT_KEY,
        ALLOWED_HOSTS="tds.example.org",
        SITE_URL="https://tds.example.org",
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "audit_key, why",
    [(None, "missing"), ("short", "too short"), ("x" * 50, "the same as SECRET_KEY")],
)
def test_production_refuses_a_weak_audit_chain_key(tmp_path, audit_key, why):
    """Rotating SECRET_KEY must not make the audit trail unverifiable, and a guessable key would
    let someone with database access forge entries."""
    extra = {"AUDIT_CHAIN_KEY": audit_key} if audit_key else {}
    result = start_django(
        tmp_path,
        DJANGO_ENV="production",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="tds.example.org",
        SITE_URL="https://tds.example.org",
        **extra,
    )
    assert result.returncode != 0, why
    assert "AUDIT_CHAIN_KEY" in result.stderr


def test_production_without_site_url_does_not_start(tmp_path):
    """E-mail links would point to 127.0.0.1."""
    result = start_django(
        tmp_path,
        DJANGO_ENV="production",
        SECRET_KEY="x" * 50,
        AUDIT_CHAIN_KEY=AUDIT_KEY,
        ALLOWED_HOSTS="tds.example.org",
    )
    assert result.returncode != 0
    assert "SITE_URL" in result.stderr


def test_production_without_secret_key_does_not_start(tmp_path):
    result = start_django(tmp_path, DJANGO_ENV="production", ALLOWED_HOSTS="tds.example.org")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert not (tmp_path / "var" / "secret_key").exists()


def test_malformed_debug_flag_does_not_start(tmp_path):
    result = start_django(tmp_path, DJANGO_DEBUG="maybe")
    assert result.returncode != 0
    assert "DJANGO_DEBUG" in result.stderr


@pytest.mark.parametrize(
    "variables, named",
    [
        ({"EMAIL_TIMEOUT": "10s"}, "EMAIL_TIMEOUT"),
        ({"EMAIL_TIMEOUT": "0"}, "EMAIL_TIMEOUT"),
        ({"OUTBOX_CLAIM_TIMEOUT": "deux minutes"}, "OUTBOX_CLAIM_TIMEOUT"),
        ({"EMAIL_TIMEOUT": "30", "OUTBOX_CLAIM_TIMEOUT": "40"}, "OUTBOX_CLAIM_TIMEOUT"),
    ],
)
def test_malformed_or_inconsistent_email_timeouts_do_not_start(tmp_path, variables, named):
    """A claim shorter than two SMTP timeouts would expire while its e-mail is still being sent."""
    result = start_django(tmp_path, **variables)
    assert result.returncode != 0
    assert named in result.stderr


@pytest.mark.parametrize("value", ["vingt", "0", "-3", "1001", "20 sockets"])
def test_a_malformed_socket_cap_does_not_start(tmp_path, value):
    result = start_django(tmp_path, WS_MAX_SOCKETS_PER_USER=value)
    assert result.returncode != 0
    assert "WS_MAX_SOCKETS_PER_USER" in result.stderr


@pytest.mark.parametrize(
    "variable, value",
    [
        ("LOGIN_ACCOUNT_FAILURE_LIMIT", "dix"),
        ("LOGIN_ACCOUNT_FAILURE_LIMIT", "0"),
        ("LOGIN_ACCOUNT_MAX_DELAY_MINUTES", "15min"),
        ("LOGIN_ACCOUNT_MAX_DELAY_MINUTES", "1441"),
    ],
)
def test_a_malformed_account_throttle_does_not_start(tmp_path, variable, value):
    result = start_django(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert variable in result.stderr


def test_the_socket_cap_is_read_from_the_environment(tmp_path):
    code = "from django.conf import settings; print(settings.WS_MAX_SOCKETS_PER_USER)"
    assert start_django(tmp_path, code=code).stdout.strip() == "20"
    assert start_django(tmp_path, code=code, WS_MAX_SOCKETS_PER_USER="5").stdout.strip() == "5"


def test_debug_is_refused_in_production(tmp_path):
    """Debug error pages would show confidential data: production refuses to start with them."""
    result = start_django(
        tmp_path,
        DJANGO_ENV="production",
        DJANGO_DEBUG="1",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="tds.example.org",
    )
    assert result.returncode != 0
    assert "DJANGO_DEBUG" in result.stderr


def test_unsupported_database_url_does_not_start(tmp_path):
    result = start_django(tmp_path, DATABASE_URL="mysql://x")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


POOL = "'pool': {'min_size': 2, 'max_size': 10, 'timeout': 10}"


def database_settings(tmp_path, **variables):
    """The default database's settings as the settings module builds them from `variables`."""
    variables.setdefault("DATABASE_URL", "postgres://tds@db.example.org:5432/tds")
    code = (
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['CONN_MAX_AGE'], d.get('OPTIONS', {}))"
    )
    return start_django(tmp_path, code=code, **variables)


@pytest.mark.parametrize(
    ("variable", "options"),
    [
        (None, "{'server_side_binding': True, 'prepare_threshold': 5, " + POOL + "}"),
        ("1", "{'server_side_binding': True, 'prepare_threshold': 5, " + POOL + "}"),
        ("0", "{" + POOL + "}"),
    ],
)
def test_postgresql_keeps_prepared_statements_unless_turned_off(tmp_path, variable, options):
    """Server-side binding and prepared statements (docs/performance.md) are on with PostgreSQL;
    DATABASE_PREPARED_STATEMENTS=0 gives Django's default back, for a pooler that cannot keep
    prepared statements."""
    variables = {} if variable is None else {"DATABASE_PREPARED_STATEMENTS": variable}
    result = database_settings(tmp_path, **variables)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 " + options


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, "0 {'server_side_binding': True, 'prepare_threshold': 5, " + POOL + "}"),
        (
            {"DATABASE_POOL_MIN_SIZE": "0", "DATABASE_POOL_MAX_SIZE": "4", "DATABASE_POOL_TIMEOUT": "3"},
            "0 {'server_side_binding': True, 'prepare_threshold': 5, "
            "'pool': {'min_size': 0, 'max_size': 4, 'timeout': 3}}",
        ),
        ({"DATABASE_POOL": "0"}, "0 {'server_side_binding': True, 'prepare_threshold': 5}"),
        ({"DATABASE_POOL": "0", "DATABASE_PREPARED_STATEMENTS": "0"}, "0 {}"),
        ({"DATABASE_URL": "sqlite:///" + "/tmp/tds-test.sqlite3"}, "0 {"),
    ],
)
def test_postgresql_connections_come_from_a_pool_never_persistent(tmp_path, variables, expected):
    """Under daphne a kept connection (CONN_MAX_AGE > 0) is never reused by the next request: they
    piled up until PostgreSQL refused more. Connections come from a pool sized by the settings, or,
    behind PgBouncer (DATABASE_POOL=0), are opened and closed by each request."""
    result = database_settings(tmp_path, **variables)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(expected)
    if "sqlite" in variables.get("DATABASE_URL", ""):
        assert "pool" not in result.stdout


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"DATABASE_POOL": "peut-être"}, "DATABASE_POOL"),
        ({"DATABASE_POOL_MAX_SIZE": "dix"}, "DATABASE_POOL_MAX_SIZE"),
        ({"DATABASE_POOL_MAX_SIZE": "0"}, "DATABASE_POOL_MAX_SIZE"),
        ({"DATABASE_POOL_MIN_SIZE": "-1"}, "DATABASE_POOL_MIN_SIZE"),
        ({"DATABASE_POOL_TIMEOUT": "10s"}, "DATABASE_POOL_TIMEOUT"),
        ({"DATABASE_POOL_TIMEOUT": "0"}, "DATABASE_POOL_TIMEOUT"),
        ({"DATABASE_POOL_MIN_SIZE": "5", "DATABASE_POOL_MAX_SIZE": "4"}, "DATABASE_POOL_MIN_SIZE"),
        # Refused in embedded mode too, where the pool has no effect.
        ({"DATABASE_URL": "", "DATABASE_POOL_TIMEOUT": "dix"}, "DATABASE_POOL_TIMEOUT"),
    ],
)
def test_malformed_or_inconsistent_pool_settings_do_not_start(tmp_path, variables, named):
    result = database_settings(tmp_path, **variables)
    assert result.returncode != 0
    assert named in result.stderr


@pytest.mark.parametrize("default", [True, False])
def test_env_bool_empty_gives_the_default(monkeypatch, default):
    """`SECURE_SSL_REDIRECT=` (empty) must not silently switch a protection off."""
    monkeypatch.setenv(NAME, "")
    assert env_bool(NAME, default=default) is default


def test_the_deployment_check_is_clean_in_production(tmp_path):
    """`manage.py check --deploy` with production variables reports nothing (CI runs it too)."""
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARIABLES}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        VAR_DIR=str(tmp_path / "var"),
        DJANGO_ENV="production",
        SECRET_KEY="k3y-" + "Zq8#" * 15,
        AUDIT_CHAIN_KEY=AUDIT_KEY,
        ALLOWED_HOSTS="tds.example.org",
        SITE_URL="https://tds.example.org",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_pages_carry_a_content_security_policy_without_inline_code(client):
    policy = client.get("/connexion/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy


# --- AUDIT_ANCHOR_PATH: an absolute file, or off ---------------------------------------------------


@pytest.mark.parametrize("value", ["var/anchors.log", "~/anchors.log", "/tmp"])
def test_the_anchor_path_is_read_strictly(value, monkeypatch):
    monkeypatch.setenv("AUDIT_ANCHOR_PATH", value)
    with pytest.raises(ImproperlyConfigured, match="AUDIT_ANCHOR_PATH"):
        env_file("AUDIT_ANCHOR_PATH", "/default")


@pytest.mark.parametrize(
    ("value", "expected"), [("", "/default"), ("off", None), ("/srv/a.log", "/srv/a.log")]
)
def test_the_anchor_path_may_be_off_or_an_absolute_file(value, expected, monkeypatch):
    monkeypatch.setenv("AUDIT_ANCHOR_PATH", value)
    assert env_file("AUDIT_ANCHOR_PATH", "/default") == expected


def test_a_relative_anchor_path_does_not_start(tmp_path):
    result = start_django(tmp_path, AUDIT_ANCHOR_PATH="var/audit-anchors.log")
    assert result.returncode != 0
    assert "AUDIT_ANCHOR_PATH" in result.stderr
