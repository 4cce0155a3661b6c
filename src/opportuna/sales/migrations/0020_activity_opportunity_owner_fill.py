from django.db import migrations
from django.db.models import OuterRef, Subquery


def fill(apps, schema_editor):
    """Every activity gets its opportunity's owner: one statement."""
    Activity = apps.get_model("sales", "Activity")
    Opportunity = apps.get_model("sales", "Opportunity")
    opportunity = Opportunity.objects.filter(pk=OuterRef("opportunity_id"))
    Activity.objects.update(opportunity_owner_id=Subquery(opportunity.values("owner_id")[:1]))


class Migration(migrations.Migration):
    dependencies = [("sales", "0019_activity_opportunity_owner")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop, elidable=True)]
