"""s1jax.config: config files + typed ``--config.a.b=value`` overrides; every error is a ConfigError naming the field."""

from __future__ import annotations

import textwrap

import pytest

from s1jax.config import ConfigError, apply_overrides, format_config, load_config_file, parse_config_args

CONFIG_TEXT = textwrap.dedent(
    '''
    import ml_collections

    def get_config(arg=None):
        return ml_collections.ConfigDict(dict(
            name="run" if arg is None else arg,
            steps=10,
            lr=1e-5,
            remat=False,
            budgets=[512, 1024],
            optional=None,
            model=dict(path="", dtype="bfloat16", layers=2, mesh=dict(fsdp=-1, tensor=1)),
        ))
    '''
)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "run.py"
    path.write_text(CONFIG_TEXT)
    return str(path)


def test_overrides_of_every_type(config_file):
    cfg, rest = parse_config_args(
        [
            f"--config={config_file}",
            "--config.steps=20",
            "--config.lr",
            "3e-4",
            "--config.remat=true",
            "--config.budgets=[1, 2, 3]",
            "--config.name=s1.1",
            "--config.model.dtype=float32",
            "--config.model.mesh.tensor=4",
            "--config.optional=anything",
            "positional",
        ]
    )
    assert rest == ["positional"]
    assert cfg.steps == 20 and isinstance(cfg.steps, int)
    assert cfg.lr == pytest.approx(3e-4) and isinstance(cfg.lr, float)
    assert cfg.remat is True
    assert list(cfg.budgets) == [1, 2, 3]
    assert cfg.name == "s1.1"
    assert cfg.model.dtype == "float32" and cfg.model.mesh.tensor == 4 and cfg.model.mesh.fsdp == -1
    assert cfg.optional == "anything"
    assert "tensor: 4" in format_config(cfg)


def test_coercions(config_file):
    cfg = load_config_file(config_file)
    apply_overrides(cfg, {"lr": "1", "steps": "5.0", "budgets": "256", "name": "123", "remat": "False"})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.steps == 5 and isinstance(cfg.steps, int)
    assert list(cfg.budgets) == [256]
    assert cfg.name == "123"
    assert cfg.remat is False


def test_config_arg_is_passed_to_get_config(config_file):
    cfg, _ = parse_config_args([f"--config={config_file}:custom"])
    assert cfg.name == "custom"


@pytest.mark.parametrize(
    "override,match",
    [
        ("--config.stpes=3", "stpes"),  # unknown field lists what exists
        ("--config.model.dtpye=x", "dtpye"),
        ("--config.modle.dtype=x", "modle"),  # unknown group
        ("--config.steps=ten", "steps.*int"),
        ("--config.steps=1.5", "steps.*int"),
        ("--config.lr=fast", "lr.*float"),
        ("--config.remat=1", "remat.*bool"),
        ("--config.budgets={'a': 1}", "budgets.*sequence"),
        ("--config.model=x", "model.*group"),
        ("--config.model..dtype=x", "malformed"),
        ("--config.=3", "malformed"),
    ],
)
def test_bad_overrides_name_the_field(config_file, override, match):
    with pytest.raises(ConfigError, match=match):
        parse_config_args([f"--config={config_file}", override])


def test_unknown_field_lists_available(config_file):
    with pytest.raises(ConfigError) as e:
        parse_config_args([f"--config={config_file}", "--config.stpes=3"])
    assert "steps" in str(e.value) and "lr" in str(e.value)


def test_missing_value_and_missing_file(tmp_path, config_file):
    with pytest.raises(ConfigError, match="needs a value"):
        parse_config_args([f"--config={config_file}", "--config.steps"])
    with pytest.raises(ConfigError, match="not found.*nope.py"):
        parse_config_args([f"--config={tmp_path / 'nope.py'}"])
    with pytest.raises(ConfigError, match="no --config"):
        parse_config_args([])


def test_broken_config_files(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="bad.py.*boom"):
        load_config_file(str(bad))
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="get_config"):
        load_config_file(str(empty))
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def get_config():\n    return {'a': 1}\n")
    with pytest.raises(ConfigError, match="ConfigDict"):
        load_config_file(str(wrong))


def test_default_config_used(config_file):
    cfg, _ = parse_config_args(["--config.steps=7"], default_config=config_file)
    assert cfg.steps == 7


def test_repo_convert_config_parses():
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "configs" / "convert.py"
    cfg, _ = parse_config_args([f"--config={path}", "--config.input=a.gguf", "--config.max_shard_gb=1"])
    assert cfg.input == "a.gguf" and cfg.output_format == "hf" and cfg.max_shard_gb == 1.0
