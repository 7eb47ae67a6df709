import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0005_document_attached_to"),
    ]

    operations = [
        migrations.AddField(
            model_name="knowledgebase",
            name="ocr_languages",
            field=models.CharField(
                blank=True,
                help_text="Tesseract languages for scanned pages and images of this base, such "
                "as chi_tra+eng; empty: the server's RAG_OCR_LANGUAGES.",
                max_length=100,
                validators=[
                    django.core.validators.RegexValidator(
                        "^[a-z_]+(\\+[a-z_]+)*$", "Tesseract language names joined with +."
                    )
                ],
            ),
        ),
    ]
