"""ASGI entry point, for servers that stream many answers at once."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rag_site.settings")
application = get_asgi_application()
