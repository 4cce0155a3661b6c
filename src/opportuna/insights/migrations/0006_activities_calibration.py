from django.db import migrations, models


def fill_outcomes(apps, schema_editor):
    """Copy each stored activity count's deal outcome and close time from its deal's facts
    (written together, so every count has them), in one set-based statement, so the counts
    stay right without a rebuild."""
    DealFacts = apps.get_model("insights", "DealFacts")
    DealActivityCount = apps.get_model("insights", "DealActivityCount")
    quote = schema_editor.connection.ops.quote_name
    facts = quote(DealFacts._meta.db_table)
    counts = quote(DealActivityCount._meta.db_table)
    # Counts without facts cannot be told apart from stale ones: the rebuild drops them too.
    schema_editor.execute(
        f"DELETE FROM {counts} WHERE NOT EXISTS ("  # noqa: S608 - table names
        f"SELECT 1 FROM {facts} AS f WHERE f.opportunity_id = {counts}.opportunity_id)"
    )
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"UPDATE {counts} SET won = f.won, closed_at = f.closed_at "  # noqa: S608 - table names
            f"FROM {facts} AS f WHERE f.opportunity_id = {counts}.opportunity_id"
        )
        return
    # Without UPDATE ... FROM (SQLite before 3.33).
    fact = f"FROM {facts} AS f WHERE f.opportunity_id = {counts}.opportunity_id"
    schema_editor.execute(
        f"UPDATE {counts} SET won = (SELECT f.won {fact}), "  # noqa: S608 - table names
        f"closed_at = (SELECT f.closed_at {fact})"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("insights", "0005_step_visit_probability"),
    ]

    operations = [
        migrations.AddField(
            model_name="dealactivitycount",
            name="won",
            field=models.BooleanField(null=True, verbose_name="won"),
        ),
        migrations.AddField(
            model_name="dealactivitycount",
            name="closed_at",
            field=models.DateTimeField(null=True, verbose_name="closed"),
        ),
        migrations.RunPython(fill_outcomes, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="dealactivitycount",
            name="won",
            field=models.BooleanField(verbose_name="won"),
        ),
        migrations.AlterField(
            model_name="dealactivitycount",
            name="closed_at",
            field=models.DateTimeField(verbose_name="closed"),
        ),
        migrations.AddIndex(
            model_name="dealactivitycount",
            index=models.Index(
                fields=["closed_at", "won", "type", "count", "opportunity"],
                name="deal_activity_closed_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="stepvisit",
            index=models.Index(
                fields=["step", "opportunity", "entered_at", "probability", "again", "id"],
                name="step_visit_calibration_idx",
            ),
        ),
    ]
