"""The demo account's configuration, made through the services as an admin would make it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from django.contrib.auth.hashers import make_password

from opportuna.accounts.models import Role, Team, User, VisibilityPolicy
from opportuna.accounts.services import (
    account_update,
    team_create,
    team_set_managers,
    user_create,
)
from opportuna.sales.demo import vocabulary as words
from opportuna.sales.models import (
    ActivityType,
    FieldDefinition,
    FieldKind,
    LostReason,
    Pipeline,
    Product,
    Step,
    Tag,
)
from opportuna.sales.services import (
    field_definition_create,
    lost_reason_save,
    pipeline_create,
    product_save,
    tag_save,
)

ACCOUNT_NAME = "Adriatica Software S.r.l."
DEMO_PASSWORD = "demo"  # noqa: S105 - the demo runs locally; every demo user shares it
EMAIL_DOMAIN = "adriatica-software.example"


class Person(NamedTuple):
    username: str
    first_name: str
    last_name: str
    role: str
    team: int | None  # index in TEAMS
    language: str
    skill: float  # multiplies the win chance of their deals: a difference statistics can show


PEOPLE = [
    Person("admin", "Giulia", "Ferrari", Role.ADMIN, None, "it", 1.0),
    Person("marco", "Marco", "Bianchi", Role.MANAGER, 0, "it", 1.1),
    Person("sarah", "Sarah", "Mitchell", Role.MANAGER, 1, "en", 1.1),
    Person("luca", "Luca", "Colombo", Role.SALESPERSON, 0, "it", 1.15),
    Person("chiara", "Chiara", "Esposito", Role.SALESPERSON, 0, "it", 1.05),
    Person("tom", "Tom", "Harris", Role.SALESPERSON, 0, "en", 0.9),
    Person("elena", "Elena", "Russo", Role.SALESPERSON, 1, "it", 1.0),
    Person("davide", "Davide", "Greco", Role.SALESPERSON, 1, "it", 0.85),
]
TEAMS = ["Team Nord", "Team Centro-Sud"]
ADMIN_USERNAME = "admin"
# The logins printed at the end: one per role.
LOGINS = [("admin", "admin"), ("manager", "marco"), ("salesperson", "luca")]

DIRECT = "Vendita diretta"
RENEWALS = "Rinnovi e partner"
PIPELINES = [
    (
        DIRECT,
        [
            ("Lead", 10),
            ("Qualificato", 20),
            ("Visita", 35),
            ("Demo", 50),
            ("Offerta", 70),
            ("Negoziazione", 85),
        ],
    ),
    (RENEWALS, [("Da rinnovare", 40), ("Offerta inviata", 70), ("In approvazione", 85)]),
]

# The multi-contact block first (label part, contact attribute, kind), then the account's own.
CONTACT_SLOTS = 2
CONTACT_PARTS = [
    ("nome", "name", FieldKind.TEXT),
    ("ruolo", "role", FieldKind.TEXT),
    ("email", "email", FieldKind.EMAIL),
    ("telefono", "phone", FieldKind.PHONE),
]
FIELDS = [
    *[
        (f"Contatto {n} {part}", kind, ())
        for n in range(1, CONTACT_SLOTS + 1)
        for part, _attribute, kind in CONTACT_PARTS
    ],
    ("Fonte", FieldKind.CHOICE, tuple(words.SOURCES)),
    ("Settore", FieldKind.CHOICE, tuple(words.SECTORS)),
    ("Numero dipendenti", FieldKind.NUMBER, ()),
    ("Sito web", FieldKind.URL, ()),
]
# Product name -> how its deals fare (win chance multiplier) and how long they take (days).
PRODUCT_ODDS = {
    "CRM Cloud licence": (1.0, 60),
    "Implementation days": (0.95, 75),
    "Training": (1.1, 30),
    "Support contract": (1.05, 40),
    "Hardware bundle": (0.9, 45),
    "ERP integration": (0.85, 120),
}


@dataclass
class Cast:
    """What the generator needs to know about the configuration it made."""

    admin: User
    users: dict[str, User]
    skill: dict[int, float]
    managers_of_team: dict[int, User]
    salespeople: list[User]
    managers: list[User]
    pipelines: dict[str, Pipeline]
    steps: dict[str, list[Step]]
    products: list[Product]
    lost_reasons: dict[str, LostReason]
    tags: dict[str, Tag]
    activity_types: dict[str, ActivityType]
    fields: list[FieldDefinition]

    @cached_property
    def field_keys(self) -> dict[str, str]:
        return {definition.label: definition.key for definition in self.fields}

    def field_values(
        self,
        *,
        contacts: Sequence[Mapping[str, str]],
        source: str,
        sector: str,
        employees: int,
        website: str,
    ) -> dict[str, str]:
        """Default-field values in their canonical stored form (as clean_field_values gives)."""
        keys = self.field_keys
        values = {
            keys[f"Contatto {slot} {part}"]: contact[attribute]
            for slot, contact in enumerate(contacts[:CONTACT_SLOTS], start=1)
            for part, attribute, _kind in CONTACT_PARTS
        }
        values[keys["Fonte"]] = source
        values[keys["Settore"]] = sector
        values[keys["Numero dipendenti"]] = str(employees)
        values[keys["Sito web"]] = website
        return values


def configure() -> Cast:
    """Create users, teams, the account settings, pipelines, fields and catalogues."""
    admin_person, *others = PEOPLE
    admin = _user(admin_person, actor=None, team=None)
    teams = [team_create(actor=admin, name=name) for name in TEAMS]
    users = {admin.username: admin}
    for person in others:
        team = None if person.team is None else teams[person.team]
        users[person.username] = _user(person, actor=admin, team=team)
    managers_of_team: dict[int, User] = {}
    for index, team in enumerate(teams):
        (manager,) = [
            users[p.username] for p in others if p.role == Role.MANAGER and p.team == index
        ]
        team_set_managers(team=team, actor=admin, managers=[manager])
        managers_of_team[team.pk] = manager
    # Hashing is deliberately slow (about half a second each): hash "demo" once for all, and
    # make the admin a superuser so the Django admin shows everything (no service grants it).
    User.objects.filter(pk__in=[u.pk for u in users.values()]).update(
        password=make_password(DEMO_PASSWORD)
    )
    User.objects.filter(pk=admin.pk).update(is_superuser=True, is_staff=True)
    admin.refresh_from_db()
    account_update(actor=admin, name=ACCOUNT_NAME, currency="EUR", visibility=VisibilityPolicy.TEAM)

    pipelines = {
        name: pipeline_create(actor=admin, name=name, steps=steps, position=index)
        for index, (name, steps) in enumerate(PIPELINES)
    }
    fields = [
        field_definition_create(actor=admin, label=label, kind=kind, choices=choices)
        for label, kind, choices in FIELDS
    ]
    products = [
        product_save(actor=admin, product=Product(name=name, unit_price=price))
        for name, price, *_rest in words.PRODUCTS
    ]
    lost_reasons = {
        name: lost_reason_save(actor=admin, lost_reason=LostReason(name=name, position=index))
        for index, name in enumerate(words.LOST_REASONS)
    }
    tags = {
        name: tag_save(actor=admin, tag=Tag(name=name, colour=colour))
        for name, colour in words.TAGS
    }
    return Cast(
        admin=admin,
        users=users,
        skill={users[p.username].pk: p.skill for p in PEOPLE},
        managers_of_team=managers_of_team,
        salespeople=[u for u in users.values() if u.role == Role.SALESPERSON],
        managers=[u for u in users.values() if u.role == Role.MANAGER],
        pipelines=pipelines,
        steps={name: list(p.steps.order_by("position", "pk")) for name, p in pipelines.items()},
        products=products,
        lost_reasons=lost_reasons,
        tags=tags,
        activity_types={t.key: t for t in ActivityType.objects.all()},
        fields=fields,
    )


def _user(person: Person, *, actor: User | None, team: Team | None) -> User:
    return user_create(
        actor=actor,
        username=person.username,
        first_name=person.first_name,
        last_name=person.last_name,
        email=f"{person.username}@{EMAIL_DOMAIN}",
        role=person.role,
        team=team,
        language=person.language,
    )
