import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """The opportunity owner, filled by 0020, is required; the activity report's two indexes
    come back holding it."""

    dependencies = [
        ("sales", "0020_activity_opportunity_owner_fill"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
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
