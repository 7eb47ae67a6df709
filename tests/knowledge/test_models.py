import pytest

from knowledge.models import KnowledgeBase
from tests.factories import make_knowledge_base

pytestmark = pytest.mark.django_db


def test_saving_a_stale_knowledge_base_keeps_the_published_index_version():
    knowledge_base = make_knowledge_base("handbook")
    stale = KnowledgeBase.objects.get(pk=knowledge_base.pk)
    KnowledgeBase.objects.filter(pk=knowledge_base.pk).update(
        index_version=7, embedding_model="model-a"
    )

    stale.description = "Policies for everyone"
    stale.save()

    fresh = KnowledgeBase.objects.get(pk=knowledge_base.pk)
    assert (fresh.index_version, fresh.embedding_model) == (7, "model-a")
    assert fresh.description == "Policies for everyone"
