from django.db import migrations


def seed(apps, schema_editor):
    Account = apps.get_model("accounts", "Account")
    Account.objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
