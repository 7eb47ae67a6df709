import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0004_conversation_source"),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="attached_to",
            field=models.ForeignKey(
                blank=True,
                help_text="The e-mail message this file was attached to (deleted with it).",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attachments",
                to="knowledge.document",
            ),
        ),
    ]
