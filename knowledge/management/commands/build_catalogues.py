"""Build the interface's translations: zh_Hant from zh_Hans (OpenCC), then every .mo."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from knowledge.catalogues import build_catalogues


class Command(BaseCommand):
    help = (
        "Make locale/zh_Hant from locale/zh_Hans with OpenCC and compile the catalogues "
        "(GNU gettext's msgfmt: apt-get install gettext). Only stale files are rebuilt."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--force", action="store_true", help="rebuild every file")

    def handle(self, *args, force: bool = False, verbosity: int = 1, **options) -> None:
        try:
            build_catalogues(force=force, verbosity=max(0, verbosity - 1))
        except RuntimeError as error:
            raise CommandError(str(error)) from None
        if verbosity:
            self.stdout.write("Translation catalogues are built.")
