import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0006_knowledgebase_ocr_languages"),
    ]

    operations = [
        migrations.CreateModel(
            name="IndexChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("document_id", models.BigIntegerField()),
                ("removed_chunk_ids", models.JSONField(blank=True, default=list)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "knowledge_base",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="index_changes",
                        to="knowledge.knowledgebase",
                    ),
                ),
            ],
        ),
    ]
