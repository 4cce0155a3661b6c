"""Factories for tests. Opportunities are built straight into the database (a fixture, not
a write path); tests of behaviour call the services."""

from dataclasses import dataclass
from datetime import timedelta

import factory
from django.utils import timezone

from opportuna.accounts.models import Role, Team, User
from opportuna.sales.models import (
    ActivityType,
    Client,
    FieldDefinition,
    FieldKind,
    LostReason,
    Opportunity,
    Pipeline,
    Product,
    Step,
    Tag,
)


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Team {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    role = Role.SALESPERSON
    password = factory.django.Password("pw")


class PipelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pipeline
        django_get_or_create = ("name",)
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Pipeline {n}")

    @factory.post_generation
    def steps(self, create, extracted, **kwargs):
        if not create or self.steps.exists():
            return
        default = [("Lead", 10), ("Qualified", 25), ("Demo", 50), ("Proposal", 70)]
        for position, (name, probability) in enumerate(extracted or default):
            Step.objects.create(
                pipeline=self, name=name, position=position, probability=probability
            )


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    name = factory.Faker("company")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Product {n}")
    unit_price = 100_00


class LostReasonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LostReason
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Reason {n}")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag{n}")


class OpportunityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Opportunity

    title = factory.Sequence(lambda n: f"Opportunity {n}")
    owner = factory.SubFactory(UserFactory)
    pipeline = factory.SubFactory(PipelineFactory)
    step = factory.LazyAttribute(lambda o: o.pipeline.steps.order_by("position").first())
    probability = factory.LazyAttribute(lambda o: o.step.probability)
    amount = 1000_00
    status = "todo"
    # Open opportunities always have a next action; closed ones never do.
    next_action_at = factory.LazyAttribute(
        lambda o: (
            None if o.status in ("won", "lost", "cancelled") else timezone.now() + timedelta(days=1)
        )
    )


def activity_type(key: str) -> ActivityType:
    """The seeded activity type with this key (call, visit, demo, info_request, ...)."""
    return ActivityType.objects.get(key=key)


# The cast of users most tests need ------------------------------------------------------


class FieldDefinitionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FieldDefinition
        django_get_or_create = ("key",)

    label = factory.Sequence(lambda n: f"Field {n}")
    key = factory.Sequence(lambda n: f"field_{n}")
    kind = FieldKind.TEXT


@dataclass(frozen=True)
class Cast:
    """owner and teammate sell in team A, other in team B; manager is in and manages team A."""

    owner: User
    teammate: User
    other: User
    manager: User
    admin: User
    team_a: Team
    team_b: Team
    pipeline: Pipeline


def make_cast() -> Cast:
    team_a = TeamFactory(name="Team A")
    team_b = TeamFactory(name="Team B")
    manager = UserFactory(username="manager", role=Role.MANAGER, team=team_a)
    team_a.managers.add(manager)
    return Cast(
        owner=UserFactory(username="owner", team=team_a),
        teammate=UserFactory(username="teammate", team=team_a),
        other=UserFactory(username="other", team=team_b),
        manager=manager,
        admin=UserFactory(username="admin", role=Role.ADMIN),
        team_a=team_a,
        team_b=team_b,
        pipeline=PipelineFactory(name="Sales"),
    )
