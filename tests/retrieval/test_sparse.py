"""Bm25Index against rank-bm25's BM25Okapi, and the BM25 tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from retrieval.errors import IndexMismatchError
from retrieval.sparse import Bm25Index, pooled_idf
from retrieval.tokenize import Bm25Tokenizer

EVERYWHERE = "everywhere"  # in every document, so its idf is negative and floored
ABSENT = "absent"  # in no document
RELATIVE = 1e-9


def zipf_corpus(seed: int, documents: int, vocabulary: int = 300) -> dict[int, list[str]]:
    """Documents of Zipf-distributed words under sparse, shuffled ids; each has EVERYWHERE."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(10 * documents, size=documents, replace=False)
    return {int(i): zipf_words(rng, vocabulary) + [EVERYWHERE] for i in ids}


def zipf_words(rng: np.random.Generator, vocabulary: int, high: int = 40) -> list[str]:
    weights = 1.0 / np.arange(1, vocabulary + 1) ** 1.1
    choices = rng.choice(vocabulary, size=int(rng.integers(0, high)), p=weights / weights.sum())
    return [f"w{i}" for i in choices]


def queries(seed: int, count: int = 12) -> list[list[str]]:
    """Queries of common and rare words, with repeats, an absent word and EVERYWHERE."""
    rng = np.random.default_rng(seed + 1000)
    found = [zipf_words(rng, 300, high=6) for _ in range(count)]
    found[0] = ["w0", "w0", "w3", ABSENT]
    found[1] = [EVERYWHERE]
    found[2] = [EVERYWHERE, "w1", "w250", "w250"]
    return found


def built(corpus: dict[int, list[str]]) -> Bm25Index:
    index = Bm25Index()
    index.add(list(corpus), list(corpus.values()))
    return index


def reference_scores(corpus: dict[int, list[str]], query: list[str]) -> np.ndarray:
    """BM25Okapi's scores over the corpus in ascending id order (the order of Bm25Index.ids())."""
    return BM25Okapi([corpus[i] for i in sorted(corpus)]).get_scores(query)


def assert_scores_match(index: Bm25Index, corpus: dict[int, list[str]], seed: int) -> None:
    np.testing.assert_array_equal(index.ids(), sorted(corpus))
    reference = BM25Okapi([corpus[i] for i in sorted(corpus)])
    for query in queries(seed):
        expected = reference.get_scores(query)
        np.testing.assert_allclose(index.scores(query), expected, rtol=RELATIVE, atol=1e-12)


@pytest.mark.parametrize(("seed", "documents"), [(1, 5), (2, 60), (3, 400), (4, 1500)])
def test_scores_equal_bm25okapi(seed: int, documents: int) -> None:
    corpus = zipf_corpus(seed, documents)
    assert_scores_match(built(corpus), corpus, seed)


def test_scores_equal_bm25okapi_with_empty_documents() -> None:
    corpus = zipf_corpus(5, 80)
    corpus.update({100_000 + i: [] for i in range(5)})
    assert_scores_match(built(corpus), corpus, 5)


@pytest.mark.parametrize("seed", [6, 7])
def test_search_ranks_like_bm25okapi(seed: int) -> None:
    corpus = zipf_corpus(seed, 300)
    index = built(corpus)
    ids = np.array(sorted(corpus))
    for query in queries(seed):
        expected = reference_scores(corpus, query)
        hits = index.search(query, k=10)
        best = np.sort(expected[expected != 0])[::-1][:10]
        np.testing.assert_allclose([hit.score for hit in hits], best, rtol=RELATIVE)
        by_id = dict(zip(ids.tolist(), expected.tolist(), strict=True))
        assert [hit.score for hit in hits] == pytest.approx([by_id[h.chunk_id] for h in hits])


def test_a_term_in_every_document_scores_with_the_epsilon_floor() -> None:
    corpus = {1: ["a", EVERYWHERE], 2: ["b", EVERYWHERE], 3: ["c", "c", EVERYWHERE]}
    idf = [np.log(3 - 1 + 0.5) - np.log(1 + 0.5)] * 3 + [np.log(0.5) - np.log(3.5)]
    floor = 0.25 * np.mean(idf)
    scores = built(corpus).scores([EVERYWHERE])
    assert scores[0] == pytest.approx(floor * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 2 / (7 / 3))))
    np.testing.assert_allclose(scores, reference_scores(corpus, [EVERYWHERE]), rtol=RELATIVE)


def test_repeated_query_terms_count_each_time() -> None:
    index = built(zipf_corpus(8, 100))
    np.testing.assert_allclose(index.scores(["w2", "w2"]), 2 * index.scores(["w2"]))


def test_absent_terms_match_nothing() -> None:
    index = built(zipf_corpus(9, 50))
    assert index.search([ABSENT], k=5) == []
    assert not index.scores([ABSENT]).any()


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_scores_after_adds_and_removes_equal_bm25okapi_on_the_survivors(seed: int) -> None:
    rng = np.random.default_rng(seed)
    index, survivors = Bm25Index(), {}
    for step in range(5):
        change_randomly(rng, index, survivors, steps=8)
        assert_scores_match(index, survivors, seed + step)
    assert len(index) == len(survivors)


def test_a_saved_index_with_removals_loads_and_keeps_changing_like_bm25okapi(tmp_path) -> None:
    rng = np.random.default_rng(15)
    index, survivors = Bm25Index(), {}
    change_randomly(rng, index, survivors, steps=12)
    index.save(tmp_path)
    loaded = Bm25Index.load(tmp_path)
    assert_scores_match(loaded, survivors, 15)
    change_randomly(rng, loaded, survivors, steps=12)
    assert_scores_match(loaded, survivors, 16)


def test_loading_an_index_of_another_format_fails_clearly(tmp_path) -> None:
    built(zipf_corpus(17, 10)).save(tmp_path)
    meta = tmp_path / "sparse.json"
    meta.write_text(meta.read_text().replace('"format": 1', '"format": 99'))
    with pytest.raises(IndexMismatchError, match="rebuild"):
        Bm25Index.load(tmp_path)


def change_randomly(rng: np.random.Generator, index: Bm25Index, survivors: dict, steps: int):
    """Add, replace and remove documents at random, mirroring the changes in `survivors`."""
    for _ in range(steps):
        if survivors and rng.random() < 0.35:
            remove_some(rng, index, survivors)
        else:
            add_some(rng, index, survivors)


def add_some(rng: np.random.Generator, index: Bm25Index, survivors: dict) -> None:
    """Add a batch of new ids and some existing ones (which replaces their documents)."""
    fresh = rng.integers(0, 2000, size=int(rng.integers(1, 30))).tolist()
    existing = (
        rng.choice(list(survivors), size=min(3, len(survivors))).tolist() if survivors else []
    )
    batch = {int(i): zipf_words(rng, 200) + [EVERYWHERE] for i in fresh + existing}
    index.add(list(batch), list(batch.values()))
    survivors.update(batch)


def remove_some(rng: np.random.Generator, index: Bm25Index, survivors: dict) -> None:
    """Remove a random share of the survivors plus ids that were never added."""
    count = int(rng.integers(1, len(survivors) + 1) * rng.random())
    doomed = rng.choice(list(survivors), size=count, replace=False).tolist()
    assert index.remove(doomed + [10_000, 10_001]) == len(doomed)
    for chunk_id in doomed:
        del survivors[chunk_id]


def test_search_over_many_documents_with_removals_ranks_like_bm25okapi() -> None:
    """Enough documents that candidates are preselected by a sampled score bound."""
    rng = np.random.default_rng(13)
    corpus = {i: zipf_words(rng, 2000, high=8) + [EVERYWHERE] for i in range(40_000)}
    index = built(corpus)
    doomed = rng.choice(40_000, size=4000, replace=False).tolist()
    index.remove(doomed)
    for chunk_id in doomed:
        del corpus[chunk_id]
    reference = BM25Okapi([corpus[i] for i in sorted(corpus)])
    ids = np.array(sorted(corpus))
    for query in (["w0", "w5"], ["w1", "w40", "w40"], ["w300"]):
        expected = reference.get_scores(query)
        order = np.lexsort((ids, -expected))[:10]
        hits = index.search(query, k=10)
        np.testing.assert_allclose([h.score for h in hits], expected[order], rtol=RELATIVE)


def pooled_scores(parts: list[dict[int, list[str]]], query: list[str]) -> dict[int, float]:
    """Every document's score when the parts are searched together with their pooled idf."""
    indexes = [built(part) for part in parts]
    idf = pooled_idf(indexes, query)
    return {
        hit.chunk_id: hit.score
        for index, part in zip(indexes, parts, strict=True)
        for hit in index.search(query, k=len(part), idf=idf)
    }


@pytest.mark.parametrize("seed", [5, 6])
def test_pooled_idf_over_split_indexes_scores_like_one_bm25okapi(seed: int) -> None:
    """Documents of equal length split into a one-document, a small and a large index: searched
    together, they score as BM25Okapi over all of them (own idfs would not: a term's idf in the
    one-document index is negative)."""
    rng = np.random.default_rng(seed)
    corpus = {i: [f"w{w}" for w in rng.zipf(1.3, 12) % 300] for i in range(1, 301)}
    ids = list(corpus)
    parts = [{i: corpus[i] for i in chunk} for chunk in (ids[:1], ids[1:40], ids[40:])]
    reference = BM25Okapi([corpus[i] for i in ids])
    common = {word for word in map("w{}".format, range(300)) if df(corpus, word) * 2 >= len(ids)}
    first = [word for word in corpus[1] if word not in common][:3]
    for query in [first, ["w20", "w7", "w7", ABSENT], *zipf_queries(rng)]:
        assert not common & set(query)  # a floored idf is pooled only approximately
        expected = dict(zip(ids, reference.get_scores(query), strict=True))
        got = pooled_scores(parts, query)
        assert got, query
        for chunk_id, score in got.items():
            assert score == pytest.approx(expected[chunk_id], rel=RELATIVE), (query, chunk_id)
        assert set(got) == {i for i, score in expected.items() if score > 0}


def df(corpus: dict[int, list[str]], word: str) -> int:
    return sum(word in words for words in corpus.values())


def zipf_queries(rng: np.random.Generator) -> list[list[str]]:
    """Queries of words that are in under half of the documents (so no idf is floored)."""
    return [[f"w{w}" for w in rng.integers(20, 300, size=3)] for _ in range(8)]


def test_pooled_idf_of_one_index_is_its_own_idf_floor_included() -> None:
    corpus = zipf_corpus(7, 200)
    index = built(corpus)
    for query in queries(7):
        own = {hit.chunk_id: hit.score for hit in index.search(query, k=200)}
        pooled = {
            hit.chunk_id: hit.score for hit in index.search(query, 200, pooled_idf([index], query))
        }
        assert pooled.keys() == own.keys()
        for chunk_id, score in own.items():
            assert pooled[chunk_id] == pytest.approx(score, rel=RELATIVE)


def test_pooled_idf_of_empty_indexes_is_empty() -> None:
    assert pooled_idf([Bm25Index(), Bm25Index()], "anything") == {}


def test_save_and_load_keep_scores_and_settings(tmp_path) -> None:
    corpus = zipf_corpus(14, 200)
    tokenizer = Bm25Tokenizer(stopwords=["w0"], stemmer=None)
    index = Bm25Index(tokenizer, k1=1.2, b=0.6, epsilon=0.1)
    index.add(list(corpus), [" ".join(words) for words in corpus.values()])
    index.remove(list(corpus)[:50])
    index.save(tmp_path)
    loaded = Bm25Index.load(tmp_path)
    assert (loaded.tokenizer, loaded.k1, loaded.b, loaded.epsilon) == (tokenizer, 1.2, 0.6, 0.1)
    for query in ("w1 w2 w2", "w0 w7", EVERYWHERE):
        np.testing.assert_array_equal(loaded.scores(query), index.scores(query))
        assert loaded.search(query, k=5) == index.search(query, k=5)


class TestTokenizer:
    def test_it_stems_english_words(self) -> None:
        assert Bm25Tokenizer()("Running runs runner") == ["run", "run", "runner"]

    def test_it_drops_english_stop_words(self) -> None:
        assert Bm25Tokenizer()("The cat and the hat") == ["cat", "hat"]

    def test_it_keeps_stop_words_and_case_when_told(self) -> None:
        tokenizer = Bm25Tokenizer(lowercase=False, stopwords=None, stemmer=None)
        assert tokenizer("The Cats") == ["The", "Cats"]

    def test_it_keeps_numbers(self) -> None:
        assert Bm25Tokenizer()("version 3.14 of R2D2") == ["version", "3", "14", "r2d2"]

    def test_it_splits_cjk_runs_into_bigrams(self) -> None:
        assert Bm25Tokenizer()("北京大学") == ["北京", "京大", "大学"]

    def test_it_keeps_a_single_cjk_character_as_a_unigram(self) -> None:
        tokenizer = Bm25Tokenizer(fold=False)
        assert tokenizer("学 東京タワー") == ["学", "東京", "京タ", "タワ", "ワー"]

    def test_it_folds_traditional_chinese_and_full_width_forms(self) -> None:
        tokenizer = Bm25Tokenizer()
        assert (
            tokenizer("員工的年假") == tokenizer("员工的年假") == ["员工", "工的", "的年", "年假"]
        )
        assert tokenizer("ＶＰＮ帳號") == ["vpn", "帐号"]

    def test_an_index_saved_before_folding_keeps_its_terms(self) -> None:
        saved = Bm25Tokenizer(fold=False).to_dict()
        del saved["fold"]
        assert Bm25Tokenizer.from_dict(saved)("員工") == ["員工"]

    def test_it_separates_cjk_from_latin_in_one_word(self) -> None:
        assert Bm25Tokenizer()("iPhone手机") == ["iphon", "手机"]

    @pytest.mark.parametrize("stemmer", ["english", None])
    def test_text_with_and_without_cjk_gets_the_same_word_terms(self, stemmer) -> None:
        """Latin-only text is stemmed in one batch, text with CJK word by word: same terms."""
        tokenizer = Bm25Tokenizer(stemmer=stemmer)
        rng = np.random.default_rng(3)
        words = ["Running", "the", "runners'", "café", "ΑΘΗΝΑ", "x2", "généralement", "IS"]
        for _ in range(50):
            text = " ".join(rng.choice(words, size=int(rng.integers(1, 12))))
            assert tokenizer(f"{text} 北京") == tokenizer(text) + ["北京"]

    def test_its_settings_round_trip(self) -> None:
        tokenizer = Bm25Tokenizer(lowercase=False, stopwords=["foo"], stemmer="french")
        assert Bm25Tokenizer.from_dict(tokenizer.to_dict()) == tokenizer

    def test_it_rejects_an_unknown_stemmer(self) -> None:
        with pytest.raises(ValueError, match="klingon"):
            Bm25Tokenizer(stemmer="klingon")

    def test_it_rejects_unknown_settings(self) -> None:
        with pytest.raises(ValueError, match="colour"):
            Bm25Tokenizer.from_dict({"colour": "blue"})


class TestTextSearch:
    """Texts go through the same tokenizer when indexed and when searched."""

    def test_an_inflected_query_finds_the_stemmed_document(self) -> None:
        index = Bm25Index()
        index.add([1, 2, 3], ["Running quickly", "Slow walking", "Cycling uphill"])
        assert index.search("runs", k=3)[0].chunk_id == 1

    def test_a_chinese_query_finds_a_chinese_document(self) -> None:
        index = Bm25Index()
        index.add([1, 2, 3], ["我在北京大学学习", "上海的天气很好", "东京塔很高"])
        assert [hit.chunk_id for hit in index.search("北京大学在哪里", k=3)] == [1]

    def test_a_japanese_query_finds_a_japanese_document(self) -> None:
        index = Bm25Index()
        index.add([1, 2, 3], ["東京タワーは高い", "大阪城は古い", "京都の寺"])
        assert [hit.chunk_id for hit in index.search("東京タワー", k=3)] == [1]
