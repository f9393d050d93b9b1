"""ArtistVectors answers gensim's KeyedVectors queries as gensim does on the same vectors (the demo
run's, under the keys its vectors.txt gives them), finds an artist by its name or by its key in the
export, and refuses a wrong argument with a Bands2VecError of one line saying what was expected."""
import dataclasses
import os
import stat
import sys

import gensim
import numpy as np
import pytest

import bands2vec
import quality
import vector_files
from artist_vectors import ArtistVectors
from errors import Bands2VecError, OptionError, QueryError, RunError, UnknownArtist

# Demo artists whose names have spaces, commas, '&', '+' and quotes: vectors.txt spells them
# otherwise (`lune,_marée`).
A, B, C, D = "lune, marée", "kit & the keys", 'dj "static" ray', "orbit + halo"
FIGURES = 1e-5  # how close our figures and gensim's must be (float32 sums in another order)


@pytest.fixture(scope="module")
def ours(demo_trained):
    return ArtistVectors.load(demo_trained)


@pytest.fixture(scope="module")
def exported(demo_trained):
    """The run's vectors.txt, as gensim loads it."""
    path = os.path.join(demo_trained, vector_files.WORD2VEC_FILE)
    return gensim.models.KeyedVectors.load_word2vec_format(path)


@pytest.fixture(scope="module")
def theirs(exported, demo_trained):
    """gensim's KeyedVectors of the export's keys with the run's exact vectors (vectors.txt rounds
    them to six decimals), so that both answer from the same numbers."""
    model = gensim.models.KeyedVectors(exported.vector_size)
    model.add_vectors(exported.index_to_key,
                      np.load(os.path.join(demo_trained, vector_files.VECTORS_FILE)))
    return model


def test_the_export_holds_the_vectors_under_their_export_keys(ours, exported):
    assert exported.index_to_key == ours.export_keys and len(exported) == len(ours)
    assert exported.index_to_key[ours.index(A)] == "lune,_marée"
    np.testing.assert_allclose(exported.vectors, ours.vectors, atol=1e-6)
    model = ours.to_gensim()
    assert isinstance(model, gensim.models.KeyedVectors) and model.index_to_key == ours.export_keys
    assert np.array_equal(model.vectors, ours.vectors)
    assert_same(model.most_similar("lune,_marée", topn=3),
                exported.most_similar("lune,_marée", topn=3))


# Each question as `ask(vectors, key)`, where key(name) is the name as that side spells it.
QUESTIONS = {
    "most_similar": lambda kv, key: kv.most_similar(key(A)),
    "most_similar topn=3": lambda kv, key: kv.most_similar(key(A), topn=3),
    "most_similar topn=None": lambda kv, key: kv.most_similar(key(A), topn=None),
    "most_similar topn=0": lambda kv, key: kv.most_similar(key(A), topn=0),
    "most_similar topn past the artists": lambda kv, key: kv.most_similar([key(A), key(B)],
                                                                         topn=1000),
    "analogy": lambda kv, key: kv.most_similar(positive=[key(A), key(B)], negative=[key(C)]),
    "negative alone": lambda kv, key: kv.most_similar(negative=key(D), topn=5),
    "weighted pairs": lambda kv, key: kv.most_similar(positive=[(key(A), 0.5), (key(B), 2.0)],
                                                      negative=[(key(C), -1.5)]),
    "a vector and a key": lambda kv, key: kv.most_similar(
        positive=[kv.get_vector(key(A)) * 3, key(B)]),
    "a weighted vector": lambda kv, key: kv.most_similar(
        positive=[(kv.get_vector(key(A)), 2.0)], negative=[key(D)]),
    "a row number": lambda kv, key: kv.most_similar(7, topn=5),
    "most_similar_cosmul": lambda kv, key: kv.most_similar_cosmul(positive=[key(A), key(B)],
                                                                  negative=[key(C)]),
    "most_similar_cosmul topn=None": lambda kv, key: kv.most_similar_cosmul(key(A), key(B),
                                                                            topn=None),
    "most_similar_cosmul of a vector": lambda kv, key: kv.most_similar_cosmul(
        [kv.get_vector(key(A), norm=True), key(D)], topn=4),
    "similar_by_vector": lambda kv, key: kv.similar_by_vector(kv.get_vector(key(B)), topn=6),
    "similar_by_key": lambda kv, key: kv.similar_by_key(key(C), topn=4),
    "similar_by_word": lambda kv, key: kv.similar_by_word(key(C), topn=4),
    "similarity of a key and itself": lambda kv, key: kv.similarity(key(A), key(A)),
    "restrict_vocab": lambda kv, key: kv.most_similar(key(A), topn=5, restrict_vocab=40),
    "restrict_vocab past its rows": lambda kv, key: kv.most_similar(key(A), restrict_vocab=5),
    "clip_start and clip_end": lambda kv, key: kv.most_similar(key(B), topn=4, clip_start=20,
                                                               clip_end=90),
    "clip_start, topn=None": lambda kv, key: kv.most_similar(key(B), topn=None, clip_start=250),
    "similar_by_vector restrict_vocab": lambda kv, key: kv.similar_by_vector(
        kv.get_vector(key(D)), topn=3, restrict_vocab=30),
    "similar_by_key restrict_vocab": lambda kv, key: kv.similar_by_key(key(C), 3, 50),
    "similarity": lambda kv, key: kv.similarity(key(A), key(B)),
    "distance": lambda kv, key: kv.distance(key(A), key(C)),
    "n_similarity": lambda kv, key: kv.n_similarity([key(A), key(B)], [key(C), key(D)]),
    "doesnt_match": lambda kv, key: kv.doesnt_match([key(A), key(B), key(C), key(D)]),
    "distances to all": lambda kv, key: kv.distances(key(A)),
    "distances to some": lambda kv, key: kv.distances(key(A), [key(B), key(C), key(D)]),
    "distances from a vector": lambda kv, key: kv.distances(kv.get_vector(key(D)) + 0.01),
    "rank": lambda kv, key: kv.rank(key(A), key(B)),
    "rank of the nearest": lambda kv, key: kv.rank(key(A), kv.most_similar(key(A), topn=1)[0][0]),
    "closer_than": lambda kv, key: kv.closer_than(key(A), key(B)),
    "get_vector": lambda kv, key: kv.get_vector(key(B)),
    "get_vector norm": lambda kv, key: kv.get_vector(key(B), norm=True),
    "a key's vector": lambda kv, key: kv[key(C)],
    "the vectors of keys": lambda kv, key: kv[[key(C), key(A)]],
    "vector_size": lambda kv, key: kv.vector_size,
    "index_to_key": lambda kv, key: kv.index_to_key,
    "len": lambda kv, key: len(kv),
    "in, a name": lambda kv, key: key(A) in kv,
    "in, a row": lambda kv, key: (0 in kv, len(kv) - 1 in kv, len(kv) in kv, -1 in kv),
}


@pytest.mark.filterwarnings("ignore:Call to deprecated `init_sims`")  # gensim's cosmul calls it
@pytest.mark.parametrize("question", QUESTIONS)
def test_each_query_answers_as_gensim_does(question, ours, theirs):
    ask = QUESTIONS[question]
    mine = ask(ours, lambda name: name)
    gensims = ask(theirs, lambda name: ours.export_keys[ours.index(name)])
    assert_same(_as_keys(mine, ours), gensims)


def _as_keys(answer, ours):
    """An answer of ours with each artist's name as gensim's side spells it (its export key)."""
    if isinstance(answer, str):
        return ours.export_keys[ours.index(answer)]
    if isinstance(answer, list):
        return [_as_keys(item, ours) for item in answer]
    if isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], str):
        return _as_keys(answer[0], ours), answer[1]
    return answer


def assert_same(mine, gensims):
    """The same keys in the same order, the same types of answer, the same figures."""
    if isinstance(gensims, np.ndarray):
        assert isinstance(mine, np.ndarray) and mine.shape == gensims.shape
        np.testing.assert_allclose(mine, gensims, atol=FIGURES)
    elif isinstance(gensims, list) and gensims and isinstance(gensims[0], tuple):
        assert [key for key, _ in mine] == [key for key, _ in gensims]
        assert all(type(figure) is float for _, figure in mine)
        np.testing.assert_allclose([f for _, f in mine], [f for _, f in gensims], atol=FIGURES)
    elif isinstance(gensims, (np.floating, float)):
        assert type(mine) is float and mine == pytest.approx(float(gensims), abs=FIGURES)
    else:
        assert mine == gensims and type(mine) is type(gensims)


def test_the_questions_are_not_trivial(ours):
    """The comparisons above compare something: answers of several artists that differ."""
    assert len(ours.most_similar(A)) == 10 and ours.most_similar(A) != ours.most_similar(B)
    assert 1 < ours.rank(A, B) < len(ours) and 0 < len(ours.closer_than(A, B)) < len(ours) - 2
    assert ours.doesnt_match([A, B, C, D]) in {A, B, C, D}
    # topn=None keeps the artists asked about, as gensim's does: the artist itself is nearest.
    assert ours.most_similar(A, topn=None)[ours.index(A)] == pytest.approx(1, abs=1e-6)
    assert ours.most_similar([A, B], topn=1000)[-1][0] not in (A, B)
    assert len(ours.most_similar([A, B], topn=1000)) == len(ours) - 2


def test_the_api_finds_an_artist_by_its_export_key(ours, demo_trained):
    assert ours.index("lune,_marée") == ours.index(A) == ours.index("Lune,_Marée")
    assert "kit_&_the_keys" in ours and "kit_&_the_keys" not in ours.key_to_index
    assert ours.most_similar("lune,_marée", topn=3) == ours.most_similar(A, topn=3)
    # Every key of the export names its artist in the API.
    with open(os.path.join(demo_trained, vector_files.WORD2VEC_FILE), encoding="utf-8") as f:
        keys = [line.split(" ", 1)[0] for line in f.read().splitlines()[1:]]
    assert [ours.index(key) for key in keys] == list(range(len(ours)))


def _renamed(ours, names):
    """The first len(names) demo artists, renamed: names that meet when spaces become '_'."""
    facts = ours.artists
    rows = slice(0, len(names))
    fields = {field.name: getattr(facts, field.name) for field in dataclasses.fields(facts)}
    fields = {name: (value[rows] if name != "more" and value is not None else value)
              for name, value in fields.items()}
    return ArtistVectors(ours.vectors[rows],
                         dataclasses.replace(facts, **dict(fields, names=names)))


COLLIDING = ["wolf parade", "wolf_parade", "wolf  parade", "wolf_parade_2", "Wolf Parade",
             "how to destroy angels_", "how to destroy angels", " ", "sleep\tover", "sleep_over_2"]


def test_names_that_meet_as_export_keys_stay_apart_and_found(ours, tmp_path):
    vectors = _renamed(ours, COLLIDING)
    keys = vectors.export_keys
    assert keys == ["wolf_parade_3", "wolf_parade", "wolf_parade_4", "wolf_parade_2", "Wolf_Parade",
                    "how_to_destroy_angels_", "how_to_destroy_angels", "_", "sleep_over",
                    "sleep_over_2"]
    assert [vectors.index(key) for key in keys] == list(range(len(keys)))
    assert [vectors.index(name) for name in COLLIDING] == list(range(len(keys)))
    for binary in (False, True):
        path = tmp_path / "new" / f"vectors-{binary}.bin"
        vectors.save_word2vec_format(path, binary=binary)
        loaded = gensim.models.KeyedVectors.load_word2vec_format(str(path), binary=binary)
        assert loaded.index_to_key == keys
        np.testing.assert_allclose(loaded.vectors, vectors.vectors, atol=0 if binary else 1e-6)
    model = vectors.to_gensim()
    assert model.index_to_key == keys and all(model.has_index_for(key) for key in keys)
    # gensim writes the model it was given in word2vec's format, and reads it back, keys and all.
    model.save_word2vec_format(str(tmp_path / "again.txt"))
    assert gensim.models.KeyedVectors.load_word2vec_format(str(tmp_path / "again.txt")
                                                           ).index_to_key == keys


def test_every_artist_of_the_full_data_is_found_by_its_export_key(full_catalog):
    vectors = ArtistVectors(np.zeros((len(full_catalog), 2), np.float32), full_catalog.facts)
    keys = vectors.export_keys
    assert len(set(keys)) == len(keys) and not any(" " in key or "\t" in key for key in keys)
    assert [vectors.index(key) for key in keys] == list(range(len(keys)))
    assert keys[vectors.index("sleep  over")] == "sleep_over"


def test_save_makes_its_folder_and_loads_back(ours, tmp_path):
    folder = tmp_path / "new" / "dir"
    ours.save(folder)
    again = ArtistVectors.load(folder)
    assert again.names == ours.names and np.array_equal(again.vectors, ours.vectors)
    assert np.array_equal(again.kmeans_clusters, ours.kmeans_clusters)
    random = ours.with_vectors(ours.vectors[::-1])
    random.save(str(folder))
    again = ArtistVectors.load(str(folder))
    assert again.kmeans_clusters is None and np.array_equal(again.vectors, ours.vectors[::-1])


def test_an_ensemble_of_other_contexts_saved_loads_back_as_it_was(demo_ensemble, tmp_path):
    """Loaded, saved vectors were one model of the tutorial's contexts: an ensemble's certainty was
    lost, and its twins were counted under contexts it was not trained on."""
    ours = bands2vec.open_run(demo_ensemble).vectors
    labels = ours.with_vectors(ours.vectors)
    labels.contexts = ("genre", "score", "label")
    for saved in (ours, labels):
        saved.save(tmp_path / "saved")
        again = ArtistVectors.load(tmp_path / "saved")
        assert ((again.members, again.contexts) == (saved.members, saved.contexts)
                == (3, saved.contexts))
        name = ours.names[0]
        assert again.twins(name) == saved.twins(name)
        assert (again.certainty(name, [], ours.names[1:4], 3)
                == saved.certainty(name, [], ours.names[1:4], 3))
    # Probe 17: without its vectors.json, a copy loaded silently as one model of the tutorial's
    # contexts.
    (tmp_path / "saved" / vector_files.SETTINGS_FILE).unlink()
    with pytest.warns(UserWarning, match=f"^{tmp_path / 'saved'}: no vectors.json "
                                         f"\\(nor run.json\\) says how its vectors were trained: "
                                         f"read as one model of the contexts genre,score"):
        assert ArtistVectors.load(tmp_path / "saved").members == 1


@pytest.mark.parametrize("settings, reason", [
    ("{", "damaged (Expecting property name"),
    ('{"contexts": "genre,mood", "members": 3}', "damaged (--contexts: unknown context 'mood'"),
    ('{"contexts": "genre,score", "members": 0}', "damaged (members must be at least 1, not 0)"),
    ('{"contexts": "genre,score"}', "damaged (not an object of contexts and members)"),
])
def test_saved_settings_that_cannot_be_read_are_named(ours, tmp_path, settings, reason):
    ours.save(tmp_path)
    (tmp_path / vector_files.SETTINGS_FILE).write_text(settings)
    with pytest.raises(RunError, match=f"^{tmp_path / vector_files.SETTINGS_FILE}: ") as error:
        ArtistVectors.load(tmp_path)
    assert reason in str(error.value) and "\n" not in str(error.value)


def test_save_into_a_runs_folder_is_refused(ours, demo_copy):
    """It replaced the run's vectors.npy and metadata.tsv, without its lock, under a run.json whose
    quality figures describe other vectors."""
    before = (demo_copy / "vectors.npy").read_bytes()
    with pytest.raises(RunError, match=f"^ArtistVectors.save: {demo_copy} is a run's folder"):
        ours.with_vectors(np.ones(ours.vectors.shape)).save(demo_copy)
    assert (demo_copy / "vectors.npy").read_bytes() == before


def test_to_gensim_without_gensim_says_so(ours, monkeypatch):
    monkeypatch.setitem(sys.modules, "gensim", None)
    monkeypatch.setitem(sys.modules, "gensim.models", None)
    with pytest.raises(Bands2VecError, match=r"to_gensim\(\) needs gensim.*pip install gensim"):
        ours.to_gensim()


def test_containment_never_raises(ours):
    assert A in ours and "lune,_marée" in ours and 0 in ours and np.int64(3) in ours
    for key in ("nobody", len(ours), -1, None, 1.5, [1], {"a": 1}, b"lune", True, np.zeros(64)):
        assert key not in ours, key


# (call, expected error, what its message says)
WRONG = {
    "topn as text": (lambda v: v.most_similar(A, topn="5"), QueryError, "topn must be a whole"),
    "topn below 0": (lambda v: v.most_similar(A, topn=-1), QueryError, "not -1"),
    "topn a fraction": (lambda v: v.most_similar(A, topn=2.5), QueryError, "not 2.5"),
    "topn True": (lambda v: v.most_similar(A, topn=True), QueryError, "not True"),
    "nothing asked": (lambda v: v.most_similar(), QueryError, "nothing to look for"),
    "empty positive": (lambda v: v.most_similar(positive=[], negative=()), QueryError,
                       "nothing to look for"),
    "a number for a list": (lambda v: v.most_similar(3.5), QueryError, "positive must be"),
    "None in the list": (lambda v: v.most_similar([A, None]), QueryError,
                         "expected artist names, vectors or (name, weight) pairs, not None"),
    "a weight as text": (lambda v: v.most_similar([(A, "heavy")]), QueryError, "(name, weight)"),
    "a weight past float64": (lambda v: v.most_similar([(A, 10 ** 400)]), QueryError,
                              "(name, weight) pairs, not"),
    "a complex vector": (lambda v: v.most_similar(np.full(64, 1 + 1j)), QueryError,
                         "vector of 64 numbers"),
    "a short vector": (lambda v: v.most_similar(np.zeros(3)), QueryError, "vector of 64 numbers"),
    "a NaN vector": (lambda v: v.most_similar(np.full(64, np.nan)), QueryError, "NaN"),
    "cancels out": (lambda v: v.most_similar(A, A), QueryError, "zero vector"),
    "unknown name": (lambda v: v.most_similar("lune marée!"), UnknownArtist, "did you mean"),
    "row past the end": (lambda v: v.most_similar(np.int64(10_000)), UnknownArtist,
                         "unknown artist 10000"),
    "bytes": (lambda v: v.similarity(A, b"x"), QueryError, "a name or a row number, not b'x'"),
    "None key": (lambda v: v.similarity(A, None), QueryError, "not None"),
    "empty n_similarity": (lambda v: v.n_similarity([], [A]), QueryError, "ws1 names no artist"),
    "empty doesnt_match": (lambda v: v.doesnt_match([]), QueryError, "no artists given"),
    "cosmul without positive": (lambda v: v.most_similar_cosmul(negative=[A]), QueryError,
                                "no positive artist"),
    "distances from None": (lambda v: v.distances(None), QueryError, "vector of 64 numbers"),
    "norm as text": (lambda v: v.get_vector(A, norm="yes"), QueryError, "norm must be True"),
    "zero vector": (lambda v: v.similar_by_vector(np.zeros(64)), QueryError, "zero vector"),
    "expression not text": (lambda v: v.query(5), QueryError, "an expression is text"),
    "empty expression": (lambda v: v.query(""), QueryError, "expected an artist name"),
    "similarity as text": (lambda v: v.describe(A, "high"), QueryError,
                           "similarity must be a finite number"),
    "similarity NaN": (lambda v: v.describe(A, float("nan")), QueryError,
                       "similarity must be a finite number from -1 to 1 (a cosine), not nan"),
    "similarity past a float": (lambda v: v.describe(A, 2 ** 2000), QueryError,
                                "(a cosine), not 1148130695274254524"),
    "similarity past a cosine": (lambda v: v.describe(A, 1e308), QueryError,
                                 "from -1 to 1 (a cosine), not 1e+308"),
    "shared with a number": (lambda v: v.shared(A, 5.5), QueryError, "others must be"),
    "shared with nobody": (lambda v: v.shared(A, None), QueryError, "others names no artist"),
    "cosmul of the zero vector": (lambda v: v.most_similar_cosmul([np.zeros(64)]), QueryError,
                                  "most_similar_cosmul: the zero vector has no nearest artists"),
    "restrict_vocab as text": (lambda v: v.most_similar(A, restrict_vocab="10"), QueryError,
                               "restrict_vocab must be a whole number of rows"),
    "clip_end below 0": (lambda v: v.most_similar(A, clip_end=-1), QueryError,
                         "clip_end must be a whole number of rows (0 or more), or None; not -1"),
    "unknown context kind": (lambda v: v.indicator("mood"), QueryError,
                             "unknown context kind 'mood'"),
    "k below 0": (lambda v: v.nearest_neighbours(k=-1), QueryError, "k must be a whole number"),
    "k as text": (lambda v: v.nearest_neighbours(k="3"), QueryError, "not '3'"),
    "rows as fractions": (lambda v: v.nearest_neighbours(rows=[1.5]), QueryError, "rows must be"),
    "rows past the end": (lambda v: v.nearest_neighbours(rows=[10 ** 6]), QueryError,
                          "from 0 to 299"),
    "vectors of other artists": (lambda v: v.with_vectors(np.zeros((3, 64))), QueryError,
                                 "one a row for the 300 artists"),
    "vectors of no columns": (lambda v: v.with_vectors(np.zeros((300, 0))), QueryError,
                              "one a row for the 300 artists, not array([], shape=(300, 0)"),
    "complex vectors": (lambda v: v.with_vectors(v.vectors + 1j), QueryError,
                        "one a row for the 300 artists, not array([["),  # was a ComplexWarning
    "for_neighbours_only as text": (lambda v: v.with_vectors(v.vectors, for_neighbours_only="x"),
                                    QueryError,
                                    "for_neighbours_only must be True or False, not 'x'"),
    "a table of text": (lambda v: ArtistVectors([["a"]], v.artists), QueryError,
                        "matrix of vectors"),
    "load None": (lambda v: ArtistVectors.load(None), RunError, "expected a path, not None"),
    "save to a number": (lambda v: v.save(5), RunError, "expected a path, not 5"),
    "export to None": (lambda v: v.save_word2vec_format(None), RunError, "expected a path"),
    "export to a path with NUL": (lambda v: v.save_word2vec_format("a\0b"), RunError,
                                  "must be a path without NUL characters"),
    "save to a name not UTF-8": (lambda v: v.save("/tmp/b2v-\udcff"), RunError,
                                 "ArtistVectors.save '/tmp/b2v-\\udcff' is not UTF-8 text"),
    # Probe 16: it named a hidden temporary file.
    "export to a folder's path": (lambda v: v.save_word2vec_format("/tmp/"), RunError,
                                  "/tmp/: a folder, where save_word2vec_format writes a file: "
                                  "name it"),
    "binary as text": (lambda v: v.save_word2vec_format("x.bin", binary="yes"), QueryError,
                       "binary must be True or False"),
    "a 3 x 3 matrix": (lambda v: v.with_vectors(np.ones((3, 3))), QueryError,
                       "for the 300 artists, not array([[1., 1., 1.], [1., 1., 1.],"),
    "exclude past the end": (lambda v: v.similar_by_vector(v.vectors[0], exclude=[10 ** 9]),
                             UnknownArtist, "unknown artist 1000000000"),
    "exclude a fraction": (lambda v: v.similar_by_vector(v.vectors[0], exclude=[1.5]), QueryError,
                           "a name or a row number, not 1.5"),
    "exclude a number": (lambda v: v.similar_by_vector(v.vectors[0], exclude=3.5), QueryError,
                         "exclude must be"),
    "a long unknown name": (lambda v: v.most_similar("x" * 100_000), UnknownArtist,
                            "unknown artist 'xxxxxxxxxx"),
    "k-means' k as text": (lambda v: quality.kmeans_clusters(v, "3"), OptionError,
                           "k must be a whole number, not '3'"),
    "a seed below 0": (lambda v: quality.quality_report(v, seed=-1), OptionError,
                       "seed must be at least 0"),
    # Probe 12: NaN and inf scores, numpy's errors from inside, or a TypeError.
    "cosmul past float64": (lambda v: v.most_similar_cosmul([np.full(64, 3e38)] * 40), QueryError,
                            "most_similar_cosmul: the shifted cosines multiply past "
                            "float64's range"),
    "cosmul of inf over inf": (lambda v: v.most_similar_cosmul([np.full(64, 3e38)] * 10,
                                                               [np.full(64, 3e38)] * 10),
                               QueryError,
                               "multiply past float64's range; give vectors of smaller"),
    "ragged rows": (lambda v: v.nearest_neighbours(rows=[[0], [1, 2]]), QueryError,
                    "rows must be a list of artists' row numbers from 0 to 299, not [[0], [1, 2]]"),
    "artists as a number": (lambda v: ArtistVectors(v.vectors, 5), QueryError,
                            "artists must be the ArtistFacts of a catalog or a run"),
    "members as text": (lambda v: ArtistVectors(v.vectors, v.artists, members="2"), OptionError,
                        "members must be a whole number, not '2'"),
    "no members": (lambda v: ArtistVectors(v.vectors, v.artists, members=0), OptionError,
                   "members must be at least 1, not 0"),
    "members the columns do not split into": (lambda v: ArtistVectors(v.vectors, v.artists,
                                                                      members=3),
                                              QueryError,
                                              "the vectors' 64 columns do not split into 3"),
    "clusters of two artists": (lambda v: ArtistVectors(v.vectors, v.artists,
                                                        kmeans_clusters=[1, 2]),
                                QueryError, "kmeans_clusters must be a whole number from 0 "
                                            "for each of the 300"),
    "clusters as text": (lambda v: ArtistVectors(v.vectors, v.artists, kmeans_clusters=["a"] * 300),
                         QueryError, "kmeans_clusters must be a whole number from 0 "
                                     "for each of the 300"),
    # Probe 15: save() wrote the largest uint64 as -1 (no clusters).
    "clusters below 0": (lambda v: ArtistVectors(v.vectors, v.artists, kmeans_clusters=[-5] * 300),
                         QueryError, "kmeans_clusters must be a whole number from 0 "
                                     "for each of the 300"),
    "clusters past int64": (lambda v: ArtistVectors(v.vectors, v.artists,
                                                    kmeans_clusters=np.full(300, 2 ** 64 - 1,
                                                                            np.uint64)),
                            QueryError, "kmeans_clusters must be a whole number from 0"),
    # Probe 14's smaller fault: text and dates were read as numbers.
    "vectors as text": (lambda v: ArtistVectors(v.vectors.astype(str), v.artists), QueryError,
                        "expected a matrix of vectors, one a row for the 300 artists, "
                        "not array([['"),
    "vectors as dates": (lambda v: ArtistVectors(v.vectors.astype(int).astype("datetime64[D]"),
                                                 v.artists),
                         QueryError, "expected a matrix of vectors, one a row for the 300 artists"),
    # Probe 15: a TypeError and an OverflowError from inside.
    "the vectors of a 0-d array": (lambda v: v[np.array(1)], QueryError,
                                   "the keys must be an artist's name or a list of names, "
                                   "not array(1)"),
    "vectors past float's range": (lambda v: ArtistVectors([[10 ** 400] * 64] * 300, v.artists),
                                   QueryError,
                                   "expected a matrix of vectors, one a row for the 300 artists"),
    "the vectors of None": (lambda v: v[None], QueryError,
                            "the keys must be an artist's name or a list"),
    "certainty of nothing": (lambda v: v.certainty([], [], [A], 3), QueryError,
                             "nothing to look for"),
    "certainty of what cancels out": (lambda v: v.certainty([A], [A], [B], 3), QueryError,
                                      "the question cancels out to the zero vector"),
    # Probe 16's smaller faults: a vector of zeros was similar as 0, first in doesnt_match, nearest
    # itself in rank, and an arbitrary order in cosmul, as was a question that cancels out.
    "similarity to zeros": (lambda v: _zeroed(v, A).similarity(B, A), QueryError,
                            f"similarity: the vector of {A!r} is all zeros, "
                            f"which has no direction"),
    "n_similarity of zeros": (lambda v: _zeroed(v, A).n_similarity([B], [A]), QueryError,
                              "n_similarity: the mean of ws2 is the zero vector"),
    "doesnt_match of zeros": (lambda v: _zeroed(v, A).doesnt_match([A, B, C]), QueryError,
                              f"doesnt_match: the vector of {A!r} is all zeros"),
    "rank of zeros": (lambda v: _zeroed(v, A).rank(B, A), QueryError,
                      f"rank: the vector of {A!r} is all"),
    "rank among zeros": (lambda v: _zeroed(v, A).rank(A, B), QueryError,
                         f"rank: the vector of {A!r} is all"),
    "distances from zeros": (lambda v: v.distances(np.zeros(64)), QueryError,
                             "distances: the zero vector has no direction to compare"),
    "cosmul of zeros": (lambda v: _zeroed(v, A).most_similar_cosmul([A]), QueryError,
                        f"most_similar_cosmul: the vector of {A!r} is all zeros"),
    "cosmul that cancels out": (lambda v: v.most_similar_cosmul([A, B], [B, A]), QueryError,
                                "most_similar_cosmul: the question cancels out (the same artists"),
}


def _zeroed(vectors, name):
    zeroed = vectors.vectors.copy()
    zeroed[vectors.index(name)] = 0
    return vectors.with_vectors(zeroed)


def test_the_vectors_of_an_array_of_row_numbers_are_its_rows(ours):
    assert np.array_equal(ours[np.array([3, 1])], ours.vectors[[3, 1]])  # as gensim's


def test_tied_answers_given_as_row_numbers_are_named(ours):
    """`tied_answers_notes([0, 28])` was a TypeError: it joined the keys as given."""
    (tied, _), *_ = ours.tied_answers(ours.names)
    rows = [ours.index(name) for name in tied]
    assert ours.tied_answers_notes(rows) == ours.tied_answers_notes(tied)
    assert ours.tied_answers_notes(rows)[0].endswith(f"cannot order them: {', '.join(tied)}")


def test_a_topn_of_numpys_small_ints_counts_past_their_range(ours):
    # 120 + the asked would wrap in an int8
    assert len(ours.most_similar(A, topn=np.int8(120))) == 120


@pytest.mark.parametrize("case", WRONG)
def test_a_wrong_argument_is_a_bands2vec_error_saying_what_was_expected(case, ours):
    call, error, says = WRONG[case]
    with pytest.raises(error) as raised:
        call(ours)
    assert isinstance(raised.value, Bands2VecError)
    assert says in str(raised.value) and "\n" not in str(raised.value)
    assert len(str(raised.value)) < 300  # an argument is quoted cut short


def test_a_fifo_or_device_is_never_replaced_by_an_export(ours, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(RunError, match="fifo: not a regular file, which a write would replace"):
        ours.save_word2vec_format(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["fifo"]


def test_an_export_where_no_file_can_be_made_names_its_path(ours, tmp_path):
    """/proc/self/fd/N names an open file, but its folder takes no new file: the error named the
    temporary file, `.N.6b3380aa: No such file or directory`."""
    with open(tmp_path / "open.txt", "w") as opened:
        path = f"/proc/self/fd/{opened.fileno()}"
        with pytest.raises(RunError) as raised:
            ours.save_word2vec_format(path)
    assert str(raised.value) == (f"{path}: cannot make the new file beside it that replaces it "
                                 f"(No such file or directory)")
    assert (tmp_path / "open.txt").read_text() == ""


def test_saving_under_a_file_is_a_run_error_naming_it(ours, tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(RunError, match="a-file"):
        ours.save(tmp_path / "a-file" / "run")
    with pytest.raises(RunError, match="a-file"):
        ours.save_word2vec_format(tmp_path / "a-file" / "vectors.txt")


def test_a_similarity_is_a_cosine_that_describe_takes(ours):
    """float32 rounding made similarity(A, A) 1.0000001, which describe() then refused as no
    cosine."""
    selves = [ours.similarity(name, name) for name in ours.index_to_key]
    assert max(selves) == 1.0 and min(selves) > 0.9999
    assert ours.describe(ours.index_to_key[0], max(selves))
