"""Hub ids (``org/name[@revision]``): parsing, the offline error, loading from a pre-populated HF cache (built here
in the cache's own layout, no network), and the multi-host download order. No JAX compilation: weights are placed,
never run."""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest

from gen_fixtures import tokenizer_dir
from s1jax import hub

REV = "0123456789abcdef0123456789abcdef01234567"
# A 1-layer Qwen2 checkpoint small enough to write by hand (GQA 4/2 heads of 8, QKV bias, untied head).
CONFIG = dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", vocab_size=330, hidden_size=32,
              intermediate_size=48, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
              torch_dtype="float32")


def _write_checkpoint(d: pathlib.Path) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    h, f, v, kv = CONFIG["hidden_size"], CONFIG["intermediate_size"], CONFIG["vocab_size"], 2 * 8
    shapes = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,), "lm_head.weight": (v, h),
              "model.layers.0.input_layernorm.weight": (h,), "model.layers.0.post_attention_layernorm.weight": (h,),
              "model.layers.0.self_attn.q_proj.weight": (h, h), "model.layers.0.self_attn.q_proj.bias": (h,),
              "model.layers.0.self_attn.k_proj.weight": (kv, h), "model.layers.0.self_attn.k_proj.bias": (kv,),
              "model.layers.0.self_attn.v_proj.weight": (kv, h), "model.layers.0.self_attn.v_proj.bias": (kv,),
              "model.layers.0.self_attn.o_proj.weight": (h, h), "model.layers.0.mlp.gate_proj.weight": (f, h),
              "model.layers.0.mlp.up_proj.weight": (f, h), "model.layers.0.mlp.down_proj.weight": (h, f)}
    save_file({k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps(CONFIG))
    shutil.copy(pathlib.Path(tokenizer_dir()) / "tokenizer.json", d / "tokenizer.json")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """HF_HUB_CACHE with models--tiny-org--tiny-qwen (snapshots/<rev>, refs/main), offline."""
    cache = tmp_path / "hub"
    snap = cache / "models--tiny-org--tiny-qwen" / "snapshots" / REV
    snap.mkdir(parents=True)
    _write_checkpoint(snap)
    (cache / "models--tiny-org--tiny-qwen" / "refs").mkdir()
    (cache / "models--tiny-org--tiny-qwen" / "refs" / "main").write_text(REV)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub._resolve_cached.cache_clear()
    yield snap
    hub._resolve_cached.cache_clear()


def test_parse_hub_id():
    assert hub.parse_hub_id("Qwen/Qwen2.5-0.5B-Instruct") == ("Qwen/Qwen2.5-0.5B-Instruct", None)
    assert hub.parse_hub_id("simplescaling/s1.1-32B@main") == ("simplescaling/s1.1-32B", "main")
    assert str(hub.parse_hub_id("org/name@" + REV)) == "org/name@" + REV
    for not_an_id in ("./org/name", "/abs/dir", "~/x/y", "a/b/c", "model.gguf", "org/x.gguf", "name", "org/",
                      "org/name@", "-org/name", "org/name..x", "runs/ckpt/step_10"):
        assert hub.parse_hub_id(not_an_id) is None, not_an_id


def test_existing_path_wins_and_neither_is_one_line(tmp_path):
    local = tmp_path / "org" / "name"
    local.mkdir(parents=True)
    assert hub.resolve_checkpoint(str(local)) == str(local)
    with pytest.raises(FileNotFoundError, match=r"does not exist \(and is not a hub id like org/name"):
        hub.resolve_checkpoint(str(tmp_path / "missing" / "dir"))


def test_offline_empty_cache_is_a_clear_error(tmp_path, monkeypatch):
    import s1jax

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.HubError, match="not in .*empty while HF_HUB_OFFLINE=1") as e:
        s1jax.load_tokenizer("tiny-org/not-cached")
    assert "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE=1"):
        s1jax.load_model("tiny-org/not-cached@main", dtype="float32")


def test_cli_hub_id_offline_exits_2_in_one_line(tmp_path, monkeypatch, capsys):
    from s1jax.cli import main as cli

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = cli.main(["generate", "--config.model.path=Qwen/Qwen2.5-0.5B-Instruct", "--config.prompt=hi",
                     "--config.output="])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "Qwen/Qwen2.5-0.5B-Instruct" in err[0] and "HF_HUB_OFFLINE=1" in err[0]
    code = cli.main(["generate", "--config.model.path=runs/no/such/ckpt", "--config.prompt=hi"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not a hub id" in err[0], err


def test_loads_from_prepopulated_cache(hub_cache):
    import s1jax
    from s1jax.model.io import read_config

    for ref in ("tiny-org/tiny-qwen", "tiny-org/tiny-qwen@main", f"tiny-org/tiny-qwen@{REV}"):
        assert hub.resolve_checkpoint(ref) == str(hub_cache)
    assert read_config("tiny-org/tiny-qwen").num_layers == 1
    tok = s1jax.load_tokenizer("tiny-org/tiny-qwen")
    assert tok.source == str(hub_cache / "tokenizer.json") and tok.chat.family == "qwen2"
    model = s1jax.load_model("tiny-org/tiny-qwen@main", dtype="float32")
    assert model.config.hidden_size == 32 and not model.config.tie_word_embeddings
    from safetensors.numpy import load_file

    emb = load_file(str(hub_cache / "model.safetensors"))["model.embed_tokens.weight"]
    assert np.array_equal(np.asarray(model.params["embed_tokens"]["embedding"]), emb)
    with pytest.raises(hub.HubError, match="no revision|not in"):
        hub.resolve_checkpoint("tiny-org/tiny-qwen@v9")


def test_process_zero_downloads_the_others_wait():
    events: list[str] = []

    def download(hub_id, local_files_only=False):
        events.append(f"download local_only={local_files_only}")
        return "/snap"

    hid = hub.HubId("org/name", None)
    barrier = lambda name: events.append(f"barrier {name}")  # noqa: E731
    assert hub.fetch_on_process_zero(hid, download=download, process=(0, 4), barrier=barrier) == "/snap"
    assert events == ["download local_only=False", "barrier s1jax_hub_org/name"]
    events.clear()
    assert hub.fetch_on_process_zero(hid, download=download, process=(3, 4), barrier=barrier) == "/snap"
    assert events == ["barrier s1jax_hub_org/name", "download local_only=True"]

    def failing(hub_id, local_files_only=False):
        events.append("download")
        raise hub.HubError("offline")

    events.clear()
    with pytest.raises(hub.HubError):  # process 0 still reaches the barrier, so the others never hang
        hub.fetch_on_process_zero(hid, download=failing, process=(0, 2), barrier=barrier)
    assert events == ["download", "barrier s1jax_hub_org/name"]
