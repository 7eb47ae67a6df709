"""manage.py bootstrap_demo: what `make run` needs on a fresh machine."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from knowledge.models import KnowledgeBase


class Command(BaseCommand):
    help = (
        "Create the admin account (once; its password is written to RAG_DATA_DIR/admin_password) "
        "and the demo knowledge base, with the admin as a member. Prints how to log in."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        password_file = settings.RAG_DATA_DIR / "admin_password"
        users = get_user_model().objects
        user = users.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = users.create_superuser(username, "", password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        knowledge_base, _ = KnowledgeBase.objects.get_or_create(
            name=settings.RAG_DEMO_KB,
            defaults={"description": "The user guide, ingested by `make run`."},
        )
        knowledge_base.members.add(user)
        self.stdout.write(login_text(username, "http://127.0.0.1:8000/"))


def login_text(username: str, url: str) -> str:
    """Where and as whom to log in, with the password bootstrap_demo made (if it still has it)."""
    password_file = settings.RAG_DATA_DIR / "admin_password"
    shown = password_file.read_text().strip() if password_file.exists() else "(unchanged)"
    return f"Log in at {url} as {username!r} with password {shown!r} (kept in {password_file})."
