"""WSGI entry point (gunicorn rag_site.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rag_site.settings")
application = get_wsgi_application()

# Load the models now, as the worker starts, rather than in its first request (RAG_WARM_UP).
from knowledge.components import warm_up  # noqa: E402  (needs the app registry set up above)

warm_up()
