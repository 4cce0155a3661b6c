"""Writes on the account's configuration (admins): pipelines, steps, fields and catalogues."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from opportuna.accounts.models import User
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import (
    ActivityType,
    EventKind,
    FieldDefinition,
    FieldKind,
    LostReason,
    Opportunity,
    OpportunityEvent,
    Pipeline,
    Product,
    Status,
    Step,
    Tag,
)
from opportuna.sales.services._common import record_many, require_active, require_admin

M = TypeVar("M", bound=models.Model)


def _validated_save(instance: M) -> M:
    try:
        instance.full_clean()
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise SalesRuleError(" ".join(messages), field=field) from exc
    instance.save()
    return instance


def _assign(instance: models.Model, values: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(values) - allowed
    if unknown:
        raise TypeError(f"cannot change {sorted(unknown)} on {type(instance).__name__}")
    for key, value in values.items():
        setattr(instance, key, value)


def _check_probability(value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 100:
        raise SalesRuleError(_("The probability must be between 0 and 100."), field="probability")


# Pipelines and steps ---------------------------------------------------------------------


@transaction.atomic
def pipeline_create(
    *, actor: User, name: str, steps: Sequence[tuple[str, int]] = (), position: int | None = None
) -> Pipeline:
    """A new pipeline, with its steps given as (name, default probability) in order."""
    require_admin(actor)
    if position is None:
        position = (Pipeline.objects.aggregate(m=Max("position"))["m"] or 0) + 1
    pipeline = _validated_save(Pipeline(name=name.strip(), position=position))
    for index, (step_name, probability) in enumerate(steps):
        _check_probability(probability)
        _validated_save(
            Step(pipeline=pipeline, name=step_name.strip(), position=index, probability=probability)
        )
    return pipeline


@transaction.atomic
def pipeline_update(*, pipeline: Pipeline, actor: User, **values: Any) -> Pipeline:
    """Rename, reorder or (de)activate a pipeline."""
    require_admin(actor)
    _assign(pipeline, values, {"name", "position", "is_active"})
    return _validated_save(pipeline)


@transaction.atomic
def step_create(
    *, actor: User, pipeline: Pipeline, name: str, probability: int, position: int | None = None
) -> Step:
    """Add a step to a pipeline (at the end unless a position is given)."""
    require_admin(actor)
    _check_probability(probability)
    if position is None:
        position = (pipeline.steps.aggregate(m=Max("position"))["m"] or 0) + 1
    return _validated_save(
        Step(pipeline=pipeline, name=name.strip(), probability=probability, position=position)
    )


@transaction.atomic
def step_update(*, step: Step, actor: User, **values: Any) -> Step:
    """Change a step; a new default probability carries to the open opportunities following it."""
    require_admin(actor)
    old_probability = step.probability
    _assign(step, values, {"name", "probability", "rot_days"})
    _check_probability(step.probability)
    step = _validated_save(step)
    if step.probability != old_probability:
        following = Opportunity.objects.filter(
            step=step, status__in=[Status.TODO, Status.STANDBY], probability_is_manual=False
        ).exclude(probability=step.probability)
        now = timezone.now()
        record_many(
            OpportunityEvent(
                opportunity_id=pk,
                actor=actor,
                at=now,
                kind=EventKind.PROBABILITY,
                changes={"probability": [before, step.probability]},
                data={"step_default": step.pk},
            )
            for pk, before in following.values_list("pk", "probability").iterator()
        )
        following.update(probability=step.probability, version=F("version") + 1, updated_at=now)
    return step


@transaction.atomic
def step_reorder(*, pipeline: Pipeline, actor: User, step_ids: Sequence[int]) -> list[Step]:
    """Put a pipeline's steps in the given order."""
    require_admin(actor)
    steps = {s.pk: s for s in pipeline.steps.all()}
    if sorted(step_ids) != sorted(steps):
        raise SalesRuleError(_("The new order must list every step of this pipeline once."))
    ordered = [steps[pk] for pk in step_ids]
    for position, step in enumerate(ordered):
        step.position = position
    Step.objects.bulk_update(ordered, ["position"])
    return ordered


@transaction.atomic
def step_delete(*, step: Step, actor: User) -> None:
    """Delete an empty step; one that holds opportunities must be emptied first."""
    require_admin(actor)
    if Opportunity.objects.filter(step=step).exists():
        raise SalesRuleError(_("Move this step's opportunities elsewhere before deleting it."))
    step.delete()


# Default fields --------------------------------------------------------------------------


def _check_choices(definition: FieldDefinition) -> None:
    if definition.kind == FieldKind.CHOICE:
        choices = [str(c).strip() for c in definition.choices or [] if str(c).strip()]
        if not choices:
            raise SalesRuleError(_("A choice field needs at least one choice."), field="choices")
        definition.choices = choices
    else:
        definition.choices = []


@transaction.atomic
def field_definition_create(
    *,
    actor: User,
    label: str,
    kind: str = FieldKind.TEXT,
    key: str = "",
    choices: Sequence[str] = (),
    required: bool = False,
    position: int | None = None,
) -> FieldDefinition:
    """Define a default field shown on every opportunity (key derived from the label)."""
    require_admin(actor)
    label = label.strip()
    if ":" in label:
        raise SalesRuleError(_("A label cannot contain ':'."), field="label")
    if position is None:
        position = (FieldDefinition.objects.aggregate(m=Max("position"))["m"] or 0) + 1
    definition = FieldDefinition(
        label=label,
        key=key or slugify(label).replace("-", "_"),
        kind=kind,
        choices=list(choices),
        required=required,
        position=position,
    )
    _check_choices(definition)
    return _validated_save(definition)


@transaction.atomic
def field_definition_update(
    *, definition: FieldDefinition, actor: User, **values: Any
) -> FieldDefinition:
    """Change a default field; its key stays so stored values keep their meaning."""
    require_admin(actor)
    _assign(definition, values, {"label", "kind", "choices", "required", "position", "is_active"})
    if ":" in definition.label:
        raise SalesRuleError(_("A label cannot contain ':'."), field="label")
    _check_choices(definition)
    return _validated_save(definition)


# Catalogues ------------------------------------------------------------------------------


@transaction.atomic
def activity_type_save(*, actor: User, activity_type: ActivityType) -> ActivityType:
    """Create or change an activity type (admins)."""
    require_admin(actor)
    if not activity_type.key:
        activity_type.key = slugify(activity_type.name).replace("-", "_")
    return _validated_save(activity_type)


@transaction.atomic
def lost_reason_save(*, actor: User, lost_reason: LostReason) -> LostReason:
    """Create or change a lost reason (admins)."""
    require_admin(actor)
    return _validated_save(lost_reason)


@transaction.atomic
def product_save(*, actor: User, product: Product) -> Product:
    """Create or change a product or service type (admins)."""
    require_admin(actor)
    return _validated_save(product)


@transaction.atomic
def tag_save(*, actor: User, tag: Tag) -> Tag:
    """Create a tag (anyone) or change one, e.g. its colour (admins)."""
    require_active(actor)
    if tag.pk is not None:
        require_admin(actor)
    return _validated_save(tag)
