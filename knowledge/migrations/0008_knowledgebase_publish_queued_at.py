from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0007_indexchange"),
    ]

    operations = [
        migrations.AddField(
            model_name="knowledgebase",
            name="publish_queued_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
