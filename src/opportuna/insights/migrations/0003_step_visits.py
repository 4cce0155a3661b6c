import django.db.models.deletion
from django.db import migrations, models

# The funnel groups the visits by these columns; PostgreSQL, told how few combinations
# they make, hashes the groups in parallel instead of planning for one group per row.
STATISTICS = "step_visit_groups"
COLUMNS = "step_id, left_by, bin, again, next_step_id, current"


def create_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} (ndistinct) ON {COLUMNS} "
            "FROM insights_stepvisit"
        )


def drop_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")


class Migration(migrations.Migration):
    dependencies = [
        ("insights", "0002_deal_facts_and_forecast_openings"),
        ("sales", "0006_updated_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="StepVisit",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("opened_at", models.DateTimeField()),
                ("entered_at", models.DateTimeField()),
                ("left_at", models.DateTimeField(blank=True, null=True)),
                ("left_by", models.CharField(blank=True, max_length=30)),
                ("days", models.FloatField(blank=True, null=True)),
                ("current", models.BooleanField(default=False)),
                ("again", models.BooleanField(default=False)),
                ("bin", models.BigIntegerField()),
                (
                    "next_step",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="sales.step",
                    ),
                ),
                (
                    "opportunity",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="sales.opportunity",
                    ),
                ),
                (
                    "step",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="sales.step",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["opportunity"], name="step_visit_opp_idx"),
                    models.Index(fields=["opened_at"], name="step_visit_opened_idx"),
                    models.Index(
                        condition=models.Q(("again", True)),
                        fields=["opened_at"],
                        name="step_visit_again_idx",
                    ),
                    models.Index(fields=["step", "bin"], name="step_visit_bin_idx"),
                ],
            },
        ),
        migrations.RunPython(create_statistics, drop_statistics),
    ]
