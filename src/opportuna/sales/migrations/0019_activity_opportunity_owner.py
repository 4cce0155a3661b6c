import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def fill(apps, schema_editor):
    """Every activity gets its opportunity's owner: one statement."""
    Activity = apps.get_model("sales", "Activity")
    Opportunity = apps.get_model("sales", "Opportunity")
    opportunity = Opportunity.objects.filter(pk=OuterRef("opportunity_id"))
    Activity.objects.update(opportunity_owner_id=Subquery(opportunity.values("owner_id")[:1]))


class Migration(migrations.Migration):
    dependencies = [
        ("sales", "0018_history_probability_index_holds_changes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The indexes go first and come back last, so that SQLite's rebuild of the table
        # (to make the column NOT NULL) does not rebuild them twice.
        migrations.RemoveIndex(model_name="activity", name="activity_user_type_idx"),
        migrations.RemoveIndex(model_name="activity", name="activity_done_idx"),
        migrations.AddField(
            model_name="activity",
            name="opportunity_owner",
            field=models.ForeignKey(
                db_index=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="opportunity owner",
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="activity",
            name="opportunity_owner",
            field=models.ForeignKey(
                db_index=False,
                editable=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="opportunity owner",
            ),
        ),
        migrations.AddIndex(
            model_name="activity",
            index=models.Index(
                condition=models.Q(("done_at__isnull", False)),
                fields=["user", "type", "done_at", "opportunity", "opportunity_owner"],
                name="activity_user_type_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="activity",
            index=models.Index(
                condition=models.Q(("done_at__isnull", False)),
                fields=["done_at", "user", "type", "opportunity", "opportunity_owner"],
                name="activity_done_idx",
            ),
        ),
    ]
