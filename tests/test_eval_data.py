"""The shipped eval sets: aime24_nofigures is AIME24 with s1's figure choices (data/eval/README.md), every shipped
set loads without a path, and a missing GPQA login is one actionable message. Pure Python."""

from __future__ import annotations

import json
import sys
import types

import pytest

from s1jax.eval import benchmarks
from s1jax.eval.benchmarks import load_benchmark, shipped_path


def _rows(shared_data_dir, name):
    return {r["id"]: r for r in map(json.loads, (shared_data_dir / f"{name}.jsonl").read_text().splitlines())}


def test_aime24_nofigures_differs_from_aime24_only_in_figures_and_padding(shared_data_dir):
    plain, nofig = _rows(shared_data_dir, "aime24"), _rows(shared_data_dir, "aime24_nofigures")
    assert sorted(plain) == sorted(nofig) == list(range(60, 90))
    changed = sorted(i for i in plain if plain[i]["problem"] != nofig[i]["problem"])
    assert changed == [71, 88]
    assert nofig[71]["problem"].startswith(plain[71]["problem"] + "\n[asy]") and "[asy]" not in plain[71]["problem"]
    assert "\x08egin{tikzpicture}" in nofig[71]["problem"]  # upstream's unescaped \b, kept as s1 saw it
    assert plain[88]["problem"].startswith(nofig[88]["problem"] + "\n[asy]") and "[asy]" not in nofig[88]["problem"]
    for i in plain:
        assert len(nofig[i]["answer"]) == 3 and int(nofig[i]["answer"]) == int(plain[i]["answer"])


def test_shipped_sets_load_without_a_path(shared_data_dir):
    counts = {name: len(load_benchmark(name)) for name in ("aime24", "aime24_nofigures", "math500", "openai_math")}
    assert counts == {"aime24": 30, "aime24_nofigures": 30, "math500": 500, "openai_math": 500}
    assert shipped_path("gpqa") is None and shipped_path("aime") == str(shared_data_dir / "aime24.jsonl")


def test_gated_gpqa_says_how_to_get_it(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'Idavidrein/gpqa' on the Hub (LocalEntryNotFoundError)")

    # a stand-in `datasets` module (importing the real one costs seconds; only its load_dataset is called)
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=refuse))
    with pytest.raises(ValueError, match=r"gated.*huggingface-cli login.*--config.data_path"):
        load_benchmark("gpqa_diamond")
    with pytest.raises(ValueError, match=r"simplescaling/aime24_nofigures@abc.*--config.data_path"):
        benchmarks._hub_rows("simplescaling/aime24_nofigures", None, "train", "abc")
