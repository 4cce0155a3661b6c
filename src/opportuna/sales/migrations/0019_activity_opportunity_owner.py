import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """Activities repeat their opportunity's owner: the column, empty for now (0020 fills it,
    0021 makes it required). The two indexes that will hold it go first and come back in
    0021, so that SQLite's rebuild of the table does not rebuild them too."""

    dependencies = [
        ("sales", "0018_history_probability_index_holds_changes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
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
    ]
