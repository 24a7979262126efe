"""The curated public API: changing it is a deliberate act that updates this test."""

import pytest

import rnnkit


def test_all_is_pinned():
    assert sorted(rnnkit.__all__) == sorted([
        "ARCH_REGISTRY", "MODEL_REGISTRY", "TASK_REGISTRY", "TOKENIZER_REGISTRY",
        "DatasetWriter", "Dictionary", "IndexedDataset", "Pretrained", "Registry",
        "RnnkitError", "Tokenizer", "__version__", "load", "register_architecture",
        "register_model", "Task", "LanguageModel", "Translator", "Tagger", "Classifier",
        "load_plugins",
    ])  # fmt: skip
    for name in rnnkit.__all__:
        assert hasattr(rnnkit, name), name


@pytest.mark.slow
def test_load_samples_and_scores_an_lm(tmp_path):
    from rnnkit.training.loop import fit
    from tests.unit.test_training import make_run

    fit(make_run(tmp_path, max_epoch=1))
    model = rnnkit.load(tmp_path / "run" / "checkpoint_best.pt", device="cpu")
    assert model.task_name == "lm"
    text = model.sample("ab", length=5, seed=1)
    assert text == model.sample("ab", length=5, seed=1)
    assert text.startswith("ab")
    scores = model.score(["abc", "ab"])
    assert [s["tokens"] for s in scores] == [4, 3]
    assert all(s["logprob"] < 0 for s in scores)
