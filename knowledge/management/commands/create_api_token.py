from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Print the API token of USERNAME, creating it if needed. Send it as "
        "'Authorization: Token <key>' (or 'Bearer <key>'). --reset replaces the old token."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--reset", action="store_true", help="Replace the token; the old one stops working."
        )

    def handle(self, *args, username: str, reset: bool, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(
                f"There is no user {username!r}; create one with `manage.py createsuperuser` "
                "or in the admin first."
            )
        if not user.is_active:
            raise CommandError(
                f"The user {username!r} is inactive; activate it in the admin first."
            )
        if reset:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
