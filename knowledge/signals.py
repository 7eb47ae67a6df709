"""Signal handlers: Celery workers pick up documents whose worker died.

At start-up a worker queues again what is left queued or abandoned; while it runs, a sweep
thread (every half lease period) queues again any document whose lease ran out (its worker was
killed) or that stayed queued for RAG_REQUEUE_AFTER_SECONDS (its message was lost, e.g. the
broker was down at upload), so no document stays stuck, whatever the broker. No Celery beat is
needed.
"""

import logging
import threading

from celery.signals import worker_init, worker_ready, worker_shutting_down
from django.conf import settings
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)
_stop = threading.Event()


@worker_init.connect
def check_configuration(**_: object) -> None:
    """Refuse to start a worker on settings that the web server's system checks refuse (a web
    server runs them as it starts; a Celery worker does not)."""
    from .checks import TAG

    if errors := [message for message in run_checks(tags=[TAG]) if message.is_serious()]:
        raise ImproperlyConfigured("; ".join(str(message) for message in errors))


@worker_ready.connect
def start_recovery(**_: object) -> None:
    from .ingestion import recover_stalled_documents  # once the apps are loaded

    ids = recover_stalled_documents(include_queued=True)
    if ids:
        logger.info("Queued %d stalled document(s) again: %s", len(ids), ids)
    threading.Thread(target=_sweep, name="stalled-document-sweep", daemon=True).start()


@worker_shutting_down.connect
def stop_recovery(**_: object) -> None:
    _stop.set()


def _sweep() -> None:
    from django.db import close_old_connections

    from .indexing import publish_forgotten_changes
    from .ingestion import recover_stalled_documents

    interval = max(1.0, settings.RAG_INGEST_LEASE_SECONDS / 2)
    while not _stop.wait(interval):
        try:
            ids = recover_stalled_documents(include_queued=False)
            if ids:
                logger.info("Took over %d abandoned document(s): %s", len(ids), ids)
            if ids := publish_forgotten_changes():
                logger.info("Queued the lost index publish of knowledge base(s) %s", ids)
        except Exception:  # the sweep must outlive a database hiccup
            logger.exception("The stalled-document sweep failed; it will try again.")
        finally:
            close_old_connections()
