from datetime import datetime

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMIN = "admin", _("Admin")
    MANAGER = "manager", _("Manager")
    SALESPERSON = "salesperson", _("Salesperson")


class VisibilityPolicy(models.TextChoices):
    OWN = "own", _("Salespeople see their own opportunities only")
    TEAM = "team", _("Salespeople see their whole team's opportunities")


class Team(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    managers = models.ManyToManyField(
        "accounts.User",
        verbose_name=_("managers"),
        related_name="managed_teams",
        blank=True,
        help_text=_("Managers see and manage every opportunity of this team's members."),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("team")
        verbose_name_plural = _("teams")

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    role = models.CharField(
        _("role"), max_length=20, choices=Role.choices, default=Role.SALESPERSON
    )
    team = models.ForeignKey(
        Team,
        verbose_name=_("team"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="members",
    )
    language = models.CharField(
        _("language"),
        max_length=10,
        blank=True,
        help_text=_("Interface language; empty follows the browser."),
    )

    objects = UserManager()

    class Meta:
        ordering = ["first_name", "last_name", "username"]
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    @property
    def is_admin(self) -> bool:
        return self.is_active and (self.role == Role.ADMIN or self.is_superuser)

    @property
    def is_manager(self) -> bool:
        return self.is_active and self.role == Role.MANAGER

    @property
    def initials(self) -> str:
        parts = [p for p in (self.first_name, self.last_name) if p]
        if not parts:
            return self.username[:2].upper()
        return "".join(p[0] for p in parts).upper()


class Account(models.Model):
    """The one account this installation serves: its name, currency and visibility policy."""

    name = models.CharField(_("account name"), max_length=100, default="Opportuna")
    currency = models.CharField(
        _("currency"), max_length=3, default="EUR", help_text=_("ISO 4217 code, e.g. EUR.")
    )
    visibility = models.CharField(
        _("visibility policy"),
        max_length=10,
        choices=VisibilityPolicy.choices,
        default=VisibilityPolicy.OWN,
    )

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("account")
        constraints = [
            models.CheckConstraint(condition=models.Q(pk=1), name="account_is_singleton"),
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def load(cls) -> "Account":
        account, _created = cls.objects.get_or_create(pk=1)
        return account


class ApiToken(models.Model):
    """A personal API token: only its SHA-256 is stored, found by its short public prefix.

    The full token reads `opp_<prefix>_<secret>` and is shown once, when it is created.
    """

    user = models.ForeignKey(
        User, verbose_name=_("user"), on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(_("name"), max_length=100, blank=True)
    prefix = models.CharField(_("prefix"), max_length=8, unique=True)
    hash = models.CharField(_("hash"), max_length=64)
    read_only = models.BooleanField(_("read only"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name or self.prefix} ({self.prefix})"

    def is_usable_at(self, moment: datetime) -> bool:
        """Not revoked, not expired at `moment`; the user's own state is checked apart."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or moment < self.expires_at
