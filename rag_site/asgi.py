"""ASGI entry point, for servers that stream many answers at once."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rag_site.settings")
application = get_asgi_application()

# Load the models now, as the worker starts, rather than in its first request (RAG_WARM_UP).
from knowledge.components import warm_up  # noqa: E402  (needs the app registry set up above)

warm_up()
