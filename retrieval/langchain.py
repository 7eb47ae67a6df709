"""A LangChain retriever over our search, so LangChain chains can use knowledge bases directly.

The only module that imports langchain_core; the rest of retrieval/ does not need it.
"""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field

from .types import Passage

SearchFunction = Callable[[str, int], list[Passage]]


class KnowledgeBaseRetriever(BaseRetriever):
    """LangChain retriever wrapping any `search(query, k) -> list[Passage]` callable.

    Each passage becomes a Document whose page_content is the passage text, whose id is the
    chunk id (as a string), and whose metadata holds chunk_id, document_id, document_title,
    page, score and knowledge_base_id, so a chain can cite the document and page.

    Parameters:
        search: returns the k best passages for a query, best first; the caller decides which
            knowledge bases it searches (the permission filter lives there, not here).
        k: passages per query, >= 1.

    Example:
        >>> retriever = KnowledgeBaseRetriever(search=my_search, k=5)
        >>> retriever.invoke("How long is parental leave?")[0].metadata["document_title"]
        'Staff handbook'
    """

    search: SearchFunction
    k: int = Field(default=10, ge=1)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [passage_document(passage) for passage in self.search(query, self.k)]


def passage_document(passage: Passage) -> Document:
    """The LangChain Document for one passage (text, id and citation metadata)."""
    metadata = {
        "chunk_id": passage.chunk_id,
        "document_id": passage.document_id,
        "document_title": passage.document_title,
        "page": passage.page,
        "score": passage.score,
        "knowledge_base_id": passage.knowledge_base_id,
    }
    return Document(page_content=passage.text, metadata=metadata, id=str(passage.chunk_id))
