"""Fewer index writes per opportunity and event, the same lookups served.

Every insert paid for each index (an import of 100,000 rows writes each one 100,000 times).
Three single-column foreign-key indexes go, since an index that starts with the same column
serves each lookup as well: `opp_client_idx` (client, status), `opp_owner_created_idx`
(owner, created_at) and `event_timeline_idx` (opportunity, at). Three more become partial,
holding only the rows that have a value (most opportunities have no lost reason, are no
duplicate and many have no product): a lookup by a value implies it is not null, so both
databases use them for it. Only indexes change: Django's AlterField would rebuild the whole
opportunity table on SQLite once per field, so the state and the database are changed
separately.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

DROPPED = [
    ("sales_opportunity_client_id_53377738", "sales_opportunity", "client_id"),
    ("sales_opportunity_owner_id_e47ae089", "sales_opportunity", "owner_id"),
    ("sales_opportunityevent_opportunity_id_ca70e128", "sales_opportunityevent", "opportunity_id"),
    ("sales_opportunity_product_id_fdb8ceaf", "sales_opportunity", "product_id"),
    ("sales_opportunity_lost_reason_id_41056614", "sales_opportunity", "lost_reason_id"),
    ("sales_opportunity_duplicated_from_id_2d890557", "sales_opportunity", "duplicated_from_id"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("sales", "0009_statistics_covering_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="opportunity",
                    name="client",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="opportunities",
                        to="sales.client",
                        verbose_name="client folder",
                    ),
                ),
                migrations.AlterField(
                    model_name="opportunity",
                    name="owner",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="opportunities",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="owner",
                    ),
                ),
                migrations.AlterField(
                    model_name="opportunity",
                    name="product",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="opportunities",
                        to="sales.product",
                        verbose_name="product",
                    ),
                ),
                migrations.AlterField(
                    model_name="opportunity",
                    name="lost_reason",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="opportunities",
                        to="sales.lostreason",
                        verbose_name="lost reason",
                    ),
                ),
                migrations.AlterField(
                    model_name="opportunity",
                    name="duplicated_from",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="duplicates",
                        to="sales.opportunity",
                        verbose_name="duplicated from",
                    ),
                ),
                migrations.AlterField(
                    model_name="opportunityevent",
                    name="opportunity",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="sales.opportunity",
                        verbose_name="opportunity",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")',
                )
                for name, table, column in DROPPED
            ],
        ),
        migrations.AddIndex(
            model_name="opportunity",
            index=models.Index(
                condition=models.Q(("product__isnull", False)),
                fields=["product"],
                name="opp_product_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="opportunity",
            index=models.Index(
                condition=models.Q(("lost_reason__isnull", False)),
                fields=["lost_reason"],
                name="opp_lost_reason_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="opportunity",
            index=models.Index(
                condition=models.Q(("duplicated_from__isnull", False)),
                fields=["duplicated_from"],
                name="opp_duplicated_from_idx",
            ),
        ),
    ]
