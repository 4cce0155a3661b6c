from django.db import migrations

# The seed's activity types; admins can rename them, add more or deactivate them.
ACTIVITY_TYPES = [
    ("call", "Call"),
    ("visit", "Visit"),
    ("demo", "Demo"),
    ("info_request", "Information request"),
    ("proposal_sent", "Proposal sent"),
    ("email", "Email"),
]


def seed(apps, schema_editor):
    ActivityType = apps.get_model("sales", "ActivityType")
    for position, (key, name) in enumerate(ACTIVITY_TYPES):
        ActivityType.objects.get_or_create(key=key, defaults={"name": name, "position": position})


def unseed(apps, schema_editor):
    ActivityType = apps.get_model("sales", "ActivityType")
    ActivityType.objects.filter(key__in=[key for key, _name in ACTIVITY_TYPES]).delete()


class Migration(migrations.Migration):
    dependencies = [("sales", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
