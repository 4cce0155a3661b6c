"""Settings, all from the environment (prefix OPPORTUNA_, plus DATABASE_URL).

A bad value stops start-up with a message naming the variable.
"""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}"
    )


def env_list(name: str, default: str) -> list[str]:
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def data_dir() -> Path:
    path = Path(os.environ.get("OPPORTUNA_DATA_DIR") or "data").expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"OPPORTUNA_DATA_DIR: cannot create the data folder {path}: {exc}"
        ) from exc
    return path


def secret_key(folder: Path) -> str:
    """The key from OPPORTUNA_SECRET_KEY, else one generated once into the data folder."""
    key = os.environ.get("OPPORTUNA_SECRET_KEY", "")
    if key:
        if len(key) < 32:
            raise ImproperlyConfigured("OPPORTUNA_SECRET_KEY must be at least 32 characters long")
        return key
    keyfile = folder / "secret_key"
    if not keyfile.exists():
        keyfile.write_text(secrets.token_urlsafe(50))
        keyfile.chmod(0o600)
    return keyfile.read_text().strip()


DATA_DIR = data_dir()
SECRET_KEY = secret_key(DATA_DIR)
DEBUG = env_bool("OPPORTUNA_DEBUG")
ALLOWED_HOSTS = env_list("OPPORTUNA_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("OPPORTUNA_CSRF_TRUSTED_ORIGINS", "")

# Behind TLS (any real deployment) cookies are secure and HSTS is on.
HTTPS = env_bool("OPPORTUNA_HTTPS")
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 31_536_000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "opportuna.core",
    "opportuna.accounts",
    "opportuna.sales",
    "opportuna.insights",
    "opportuna.integrations",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",
    "django_htmx",
    "template_partials",
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "opportuna.accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "opportuna.urls"
WSGI_APPLICATION = "opportuna.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "opportuna.sales.context_processors.navigation",
            ],
        },
    },
]


def database() -> dict[str, object]:
    url = os.environ.get("DATABASE_URL", "")
    if url:
        try:
            config: dict[str, object] = dict(dj_database_url.parse(url, conn_max_age=60))
        except ValueError as exc:
            raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
        if config.get("ENGINE") not in {
            "django.db.backends.postgresql",
            "django.db.backends.sqlite3",
        }:
            raise ImproperlyConfigured("DATABASE_URL must point to PostgreSQL or SQLite")
        config["CONN_HEALTH_CHECKS"] = True
        if config["ENGINE"] == "django.db.backends.sqlite3":
            config["ENGINE"] = SQLITE_ENGINE
            config["OPTIONS"] = SQLITE_OPTIONS
        else:
            config["OPTIONS"] = postgresql_options(dict(config.get("OPTIONS") or {}))
        return config
    return {
        "ENGINE": SQLITE_ENGINE,
        "NAME": DATA_DIR / "opportuna.sqlite3",
        "OPTIONS": SQLITE_OPTIONS,
    }


def postgresql_options(options: dict[str, object]) -> dict[str, object]:
    """Session settings for PostgreSQL: JIT compilation off, unless the URL's own
    `?options=` says otherwise. The reports' queries run for a fraction of a second, and on
    a million rows compiling them took 100-150 ms more than it saved."""
    given = str(options.get("options") or "")
    if "jit" not in given:
        options["options"] = f"{given} -c jit=off".strip()
    return options


# Django's SQLite backend, refreshing the planner's statistics as connections close.
SQLITE_ENGINE = "opportuna.core.sqlite"

# WAL lets readers and one writer work at once; IMMEDIATE takes the write lock at BEGIN,
# so two writers queue on the busy timeout instead of failing with "database is locked".
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": (
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"
        "PRAGMA busy_timeout=20000;"
        "PRAGMA foreign_keys=ON;"
        # Room for the indexes of big tables (64 MiB, taken only as used): bulk writes and
        # statistics over 100,000s of rows would otherwise re-read the same pages. Temporary
        # storage stays SQLite's default (files, cached by the system): kept in memory, a
        # sort of a few 100,000 rows (a GROUP BY) took a third longer and more.
        "PRAGMA cache_size=-65536;"
    ),
}

DATABASES = {"default": database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Django 6's default today: a URL typed without a scheme means https. Drop with Django 6.
FORMS_URLFIELD_ASSUME_HTTPS = True

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("it", _("Italian"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("OPPORTUNA_TIME_ZONE", "Europe/Rome")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Serve straight from the apps' folders when nothing was collected (the demo);
# a deployment runs collectstatic and gets compressed, cached files.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

TASKS = {
    "default": {
        "BACKEND": os.environ.get(
            "OPPORTUNA_TASKS_BACKEND", "django_tasks.backends.immediate.ImmediateBackend"
        ),
    }
}

# Webhook URLs resolving to private, loopback or link-local addresses are refused unless this
# is on (tests and a receiver on one's own machine; never in production).
WEBHOOK_ALLOW_PRIVATE = env_bool("OPPORTUNA_WEBHOOK_ALLOW_PRIVATE")

EMAIL_BACKEND = os.environ.get(
    "OPPORTUNA_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = os.environ.get("OPPORTUNA_FROM_EMAIL", "opportuna@localhost")
EMAIL_HOST = os.environ.get("OPPORTUNA_EMAIL_HOST", "localhost")
EMAIL_HOST_USER = os.environ.get("OPPORTUNA_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("OPPORTUNA_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env_bool("OPPORTUNA_EMAIL_TLS")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number; got {raw!r}") from None


EMAIL_PORT = env_int("OPPORTUNA_EMAIL_PORT", 25)
# Links in emails (reminder digests) are absolute: they start with this address.
OPPORTUNA_BASE_URL = os.environ.get("OPPORTUNA_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
if not OPPORTUNA_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("OPPORTUNA_BASE_URL must start with http:// or https://")

LOG_LEVEL = os.environ.get("OPPORTUNA_LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"OPPORTUNA_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL; got {LOG_LEVEL!r}"
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
