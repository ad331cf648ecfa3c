"""s1K and the eval sets as TFDS array_record datasets: build from the fixture files, read back through the training
input path and the eval loader (identical to reading the files), per-host reads, resume, no TensorFlow, bad input.

Pure data: a tiny BPE tokenizer, no model, no XLA compilation.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets", reason="the tfds extra (make test installs it: .[test,demo,tfds])")

from fixtures_s1k import s1k_fixture_rows, write_s1k_fixture  # noqa: E402 (after the importorskip)
from s1jax import exit_codes
from s1jax.cli.main import main as cli_main
from s1jax.data.batching import SFTBatcher
from s1jax.data.files import read_rows
from s1jax.data.records import record_examples
from s1jax.data.sources import check_source, read_raw_rows
from s1jax.data.tfds.prepare import prepare_dataset, rows_sha256
from s1jax.data.tfds.reader import check_built, open_data_source, parse_tfds_source
from s1jax.data.tfds.schemas import SCHEMAS, normalize_row
from s1jax.eval.benchmarks import load_benchmark
from s1jax.tokenizer import load_tokenizer
from s1jax.train.sft import build_batcher, data_digest
from train_fixtures import tiny_config, write_train_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
EVAL = REPO / "data" / "eval"
N_ROWS = 21  # not a multiple of the batch size: the last partial batch is exercised


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A train dir (tiny tokenizer + train.jsonl) and a TFDS data dir with s1k (from that JSONL), s1k_1_1 (from a
    parquet fixture), aime24 and math500 (from the shipped files)."""
    root = tmp_path_factory.mktemp("tfds")
    train_dir = write_train_dir(root / "train", n=N_ROWS)
    s11 = write_s1k_fixture(root / "s11", n=6, fmt="parquet", variant="s1K-1.1")
    data_dir = root / "tfds"
    summaries = {
        "s1k": prepare_dataset("s1k", str(data_dir), source=str(train_dir / "train.jsonl"), progress=False),
        "s1k_1_1": prepare_dataset("s1k_1_1", str(data_dir), source=str(s11), progress=False),
        "aime24": prepare_dataset("aime24", str(data_dir), progress=False),
        "math500": prepare_dataset("math500", str(data_dir), progress=False),
    }
    return {"root": root, "train_dir": train_dir, "s11": s11, "data_dir": data_dir, "summaries": summaries}


def _normalized(name, rows, where="src"):
    return [normalize_row(SCHEMAS[name], r, i, where) for i, r in enumerate(rows)]


def test_builders_write_the_source_rows_in_order(built):
    data_dir = str(built["data_dir"])
    jsonl = read_rows(built["train_dir"] / "train.jsonl")
    rows, _ = read_raw_rows("tfds:s1k/1.0.0", "train", tfds_dir=data_dir)
    assert rows == _normalized("s1k", jsonl)  # record i = row i; list[str] traces, metadata text
    s = built["summaries"]["s1k"]
    assert (s.rows, s.split, s.version) == (N_ROWS, "train", "1.0.0") and s.bytes > 0
    assert s.sha256 == rows_sha256(_normalized("s1k", jsonl))  # the summary's checksum is of the source rows
    rows11, _ = read_raw_rows("tfds:s1k_1_1", "train", tfds_dir=data_dir)  # no version: the newest built
    assert rows11 == _normalized("s1k_1_1", s1k_fixture_rows(6, "s1K-1.1"))
    assert set(rows11[0]) == set(SCHEMAS["s1k_1_1"].signature())  # s1K-1.1's columns, optional ones filled
    assert rows11[0]["gemini_grade_reason"] == "" and rows11[0]["deepseek_thinking_trajectory"].startswith("Okay")
    assert built["summaries"]["math500"].rows == 500 and built["summaries"]["math500"].split == "test"
    again = prepare_dataset("s1k", data_dir, source=str(built["train_dir"] / "train.jsonl"), progress=False)
    assert again.reused and again.sha256 == s.sha256


def _batchers(built, **data):
    cfg = tiny_config(built["train_dir"], built["root"] / "run")
    for k, v in data.items():
        cfg.data[k] = v
    tok = load_tokenizer(cfg.model.tokenizer)
    jsonl_batcher, jsonl_stats = build_batcher(cfg, tok)
    cfg.data.source, cfg.data.tfds_dir = "tfds:s1k/1.0.0", str(built["data_dir"])
    tfds_batcher, tfds_stats = build_batcher(cfg, tok)
    return cfg, tok, jsonl_batcher, jsonl_stats, tfds_batcher, tfds_stats


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


# examples are 124..170 tokens: block 150 truncates (or drops) some of them
@pytest.mark.parametrize("data", [{}, {"block_size": 150}, {"overlong": "drop", "block_size": 150},
                                  {"packing": True, "block_size": 320}], ids=["plain", "truncate", "drop", "packing"])
def test_training_from_tfds_gives_the_jsonl_batches_and_resumes(built, data):
    cfg, _, jb, js, tb, ts = _batchers(built, **data)
    assert ts.as_dict() == js.as_dict()  # the same examples kept / truncated / dropped
    if data.get("block_size") == 150:
        assert js.truncated + js.dropped_overlong > 0
    assert type(tb.examples).__name__ == "RecordExamples"  # read on demand, not a list
    assert tb.steps_per_epoch == jb.steps_per_epoch and tb.num_rows == jb.num_rows
    steps = tb.total_steps(int(cfg.train.epochs))
    for step in range(steps):  # token ids, loss masks, positions, padding and order, every step of every epoch
        assert tb.global_rows_at(step) == jb.global_rows_at(step)
        _same(tb.batch_at(step), jb.batch_at(step))
    # resume: a fresh batcher restored from a mid-run state gives the batch of that step
    _, _, _, _, resumed, _ = _batchers(built, **data)
    step = steps // 2 + 1
    assert resumed.restore(tb.state(step)) == step
    _same(resumed.batch_at(step), jb.batch_at(step))
    assert data_digest(tb.examples) == data_digest(resumed.examples)


class CountingSource:
    """A data source that records which records were read."""

    def __init__(self, source):
        self.source, self.read = source, []

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        self.read.append(int(i))
        return self.source[i]

    def __getitems__(self, indices):
        self.read.extend(int(i) for i in indices)
        return self.source.__getitems__(indices)


def test_each_host_reads_only_its_records(built):
    """Two processes (threads, with a barrier as the all-gather): each tokenizes every other record for the length
    scan, then reads only the records of its half of each global batch, and gets the JSONL batcher's rows."""
    cfg, tok, jb, _, _, _ = _batchers(built)
    ds, _ = open_data_source("tfds:s1k/1.0.0", str(built["data_dir"]))
    sources = [CountingSource(ds), CountingSource(ds)]
    slots, barrier = {}, threading.Barrier(2)

    def host(p):
        def allgather(local):
            slots[p] = local
            barrier.wait(timeout=60)
            return np.stack([slots[0], slots[1]])

        examples, _ = record_examples(sources[p], tok, name="s1k", block_size=int(cfg.data.block_size),
                                      process_index=p, process_count=2, allgather=allgather)
        return examples

    with ThreadPoolExecutor(2) as pool:
        examples = list(pool.map(host, (0, 1)))
    for p in (0, 1):
        assert sources[p].read == list(range(p, N_ROWS, 2))  # the length scan: this process's shard only
        assert examples[p].sha256 == examples[1 - p].sha256 and np.array_equal(examples[p].lengths, examples[1 - p].lengths)
        sources[p].read.clear()
        host_batcher = SFTBatcher(examples[p], global_batch_size=8, block_size=int(cfg.data.block_size),
                                  seq_len_multiple=int(cfg.data.seq_len_multiple), pad_id=tok.pad_token_id,
                                  process_index=p, process_count=2)
        ref = SFTBatcher(jb.examples, global_batch_size=8, block_size=int(cfg.data.block_size),
                         seq_len_multiple=int(cfg.data.seq_len_multiple), pad_id=tok.pad_token_id,
                         process_index=p, process_count=2)
        for step in range(host_batcher.total_steps(2)):
            sources[p].read.clear()
            _same(host_batcher.batch_at(step), ref.batch_at(step))
            mine = [j for row in host_batcher.global_rows_at(step)[p * 4 : (p + 1) * 4] for j in row]
            assert sources[p].read == [int(examples[p].record_ids[j]) for j in mine]


def test_eval_loader_reads_aime24_and_math500_from_tfds_like_the_shipped_files(built):
    for name, count in (("aime24", 30), ("math500", 500)):
        from_files = load_benchmark(name, str(EVAL / f"{name}.jsonl"))
        from_tfds = load_benchmark(name, f"tfds:{name}/1.0.0", tfds_dir=str(built["data_dir"]))
        assert len(from_tfds) == count and from_tfds == from_files
        assert [it.prompt_text for it in from_tfds] == [it.prompt_text for it in from_files]


def test_tensorflow_is_never_imported(built):
    """A fresh interpreter where TensorFlow looks installed (an import hook records any import of it): prepare,
    check, open, read every record through the training input path and the eval loader."""
    script = f"""
import importlib.abc, importlib.machinery, sys
imported = []
class FakeTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    # TensorFlow "installed": find_spec says it exists (etils/tfds probe for it); importing it is recorded
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return importlib.machinery.ModuleSpec(name, self)
        return None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        imported.append(module.__name__)
        raise ImportError("tensorflow imported")
sys.meta_path.insert(0, FakeTensorFlow())
sys.path.insert(0, {str(REPO / 'tests')!r})
from s1jax.data.tfds.prepare import prepare_dataset
from s1jax.data.records import record_examples
from s1jax.data.tfds.reader import open_data_source
from s1jax.eval.benchmarks import load_benchmark
from s1jax.tokenizer import load_tokenizer
prepare_dataset("aime24", {str(built['root'] / 'tfds_fresh')!r}, progress=False)
ds, _ = open_data_source("tfds:s1k/1.0.0", {str(built['data_dir'])!r})
examples, _ = record_examples(ds, load_tokenizer({str(built['train_dir'] / 'tokenizer.json')!r}), name="s1k",
                              block_size=256)
assert len(list(examples)) == {N_ROWS}
assert len(load_benchmark("math500", "tfds:math500/1.0.0", tfds_dir={str(built['data_dir'])!r})) == 500
assert "tensorflow" not in sys.modules and not imported, imported
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
    assert "tensorflow" not in sys.modules  # nor in this process, after every test above


@pytest.fixture(scope="module")
def bad_dirs(built):
    """Data dirs with one defect each."""
    root = built["root"] / "bad"
    other_schema = root / "other_schema"
    shutil.copytree(built["data_dir"] / "aime24" / "1.0.0", other_schema / "s1k" / "1.0.0")
    tfrecord = root / "tfrecord"
    shutil.copytree(built["data_dir"] / "s1k" / "1.0.0", tfrecord / "s1k" / "1.0.0")
    info = tfrecord / "s1k" / "1.0.0" / "dataset_info.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "fileFormat": "tfrecord"}))
    return {"other_schema": other_schema, "tfrecord": tfrecord}


def test_bad_tfds_sources_fail_with_one_clear_line(built, bad_dirs, tmp_path):
    good = str(built["data_dir"])
    cases = [
        ("tfds:s1k/1.0.0", str(tmp_path / "nowhere"), FileNotFoundError, ["does not exist", "s1jax data prepare"]),
        ("tfds:s1k/1.0.0", "", ValueError, ["tfds_dir"]),
        ("tfds:s1k/2.0.0", good, FileNotFoundError, ["version 2.0.0", "built: ['1.0.0']", "tfds:s1k/1.0.0"]),
        ("tfds:gpqa/1.0.0", good, FileNotFoundError, ["no dataset 'gpqa'", "aime24"]),
        ("tfds:s1k/1.0", good, ValueError, ["tfds:NAME/MAJOR.MINOR.PATCH"]),
        ("tfds:s1k/1.0.0", str(bad_dirs["other_schema"]), ValueError,
         ["another schema", "missing columns ['attempt', 'cot_type'", "unexpected columns ['answer'", "overwrite"]),
        ("tfds:s1k/1.0.0", str(bad_dirs["tfrecord"]), ValueError, ["tfrecord", "array_record"]),
    ]
    for source, data_dir, error, needles in cases:
        with pytest.raises(error) as e:
            check_source(source, split="train", tfds_dir=data_dir)
        message = str(e.value)
        assert "\n" not in message and "data.source" in message, message
        for needle in needles:
            assert needle in message, (needle, message)
    with pytest.raises(ValueError, match=r"split 'test' is not in .*splits: \['train'\]"):
        check_built("tfds:s1k/1.0.0", good, "test")
    assert parse_tfds_source("tfds:s1k:1.0.0") == parse_tfds_source("tfds:s1k/1.0.0")


def _cli(capsys, argv):
    rc = cli_main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_train_and_eval_reject_bad_tfds_sources_before_loading(built, bad_dirs, tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr("s1jax.cli.train.train", never)
    train = ["train", f"--config=configs/train/tiny.py:{built['train_dir']}", f"--config.train.output_dir={tmp_path}/run"]
    for extra, needle in (
        (["--config.data.source=tfds:s1k/3.1.4", f"--config.data.tfds_dir={built['data_dir']}"], "version 3.1.4"),
        (["--config.data.source=tfds:s1k/1.0.0", f"--config.data.tfds_dir={tmp_path}/missing"], "does not exist"),
        (["--config.data.source=tfds:s1k/1.0.0"], "--config.data.tfds_dir"),
        (["--config.data.source=tfds:s1k/1.0.0", f"--config.data.tfds_dir={bad_dirs['other_schema']}"], "another schema"),
    ):
        rc, _, err = _cli(capsys, train + extra)
        assert rc == exit_codes.USAGE and len(err.strip().splitlines()) == 1 and needle in err, err
    ev = ["eval", "--config=configs/eval/aime24.py", "--config.model.path=.", f"--config.output_dir={tmp_path}/ev",
          "--config.data_path=tfds:aime24/0.1.0", f"--config.tfds_dir={built['data_dir']}"]
    rc, _, err = _cli(capsys, ev)
    assert rc == exit_codes.USAGE and len(err.strip().splitlines()) == 1 and "version 0.1.0" in err, err
    assert not (tmp_path / "run").exists() and not (tmp_path / "ev").exists()


def test_cli_data_prepare_builds_and_summarises(built, tmp_path, capsys):
    data_dir = tmp_path / "dd"
    argv = ["data", "prepare", f"--config.data_dir={data_dir}", "--config.datasets=s1k,aime24",
            f"--config.sources.s1k={built['train_dir'] / 'train.jsonl'}", "--config.progress=false"]
    rc, out, err = _cli(capsys, argv)
    assert rc == 0, err
    s1k = built["summaries"]["s1k"]
    assert re.search(rf"tfds:s1k/1.0.0 +train +{N_ROWS} +[\d,]+ +{s1k.sha256[:16]} ", out), out
    assert "tfds:aime24/1.0.0" in out and "--config.data.source=tfds:s1k/1.0.0" in out
    assert check_built("tfds:aime24/1.0.0", str(data_dir)).num_rows == 30
    rc, out, _ = _cli(capsys, argv)
    assert rc == 0 and out.count("(already built)") == 2
    for extra, needle in ((["--config.datasets=s1k,gpqa"], "unknown ['gpqa']"),
                          ([f"--config.sources.s1k={tmp_path}/none.jsonl"], "does not exist")):
        rc, _, err = _cli(capsys, argv + extra)
        assert rc == exit_codes.USAGE and len(err.strip().splitlines()) == 1 and needle in err, err
    rc, _, err = _cli(capsys, ["data", "build"])
    assert rc == exit_codes.USAGE and "s1jax data prepare" in err


MULTIHOST_DRIVER = r"""
import json, sys
sys.path.insert(0, {tests!r})
from train_fixtures import tiny_config
from s1jax.train import distributed
cfg = tiny_config({data!r}, {out!r}, max_steps=3, save_every=2)
if {tfds_dir!r}:
    cfg.data.source, cfg.data.tfds_dir = "tfds:s1k/1.0.0", {tfds_dir!r}
cfg.distributed.mode = "on"
cfg.distributed.coordinator_address = {addr!r}
cfg.distributed.num_processes = 2
cfg.distributed.process_id = int(sys.argv[1])
cfg.distributed.initialization_timeout = 120
distributed.initialize(cfg.distributed)
import jax
from s1jax.train.sft import train
r = train(cfg, log=lambda *_: None)
print("RESULT " + json.dumps({{"losses": r.losses, "tf": "tensorflow" in sys.modules}}), flush=True)
"""


@pytest.mark.slow
def test_two_processes_train_from_tfds_like_from_jsonl(built, tmp_path):
    """jax.distributed with two local processes: the real all-gather of the length scan, then each process feeding
    its half of every batch from the TFDS records; the losses equal the JSONL run's bit for bit (~3 min on 2 cores)."""
    import os
    import socket

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    results = {}
    for name, tfds_dir in (("jsonl", ""), ("tfds", str(built["data_dir"]))):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            addr = f"127.0.0.1:{s.getsockname()[1]}"
        script = MULTIHOST_DRIVER.format(tests=str(REPO / "tests"), data=str(built["train_dir"]),
                                         out=str(tmp_path / name), tfds_dir=tfds_dir, addr=addr)
        procs = [subprocess.Popen([sys.executable, "-c", script, str(i)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for i in range(2)]
        outs = [p.communicate(timeout=900)[0] for p in procs]
        lines = [next((ln for ln in o.splitlines() if ln.startswith("RESULT ")), None) for o in outs]
        assert all(lines), outs[0][-3000:] + outs[1][-3000:]
        results[name] = [json.loads(ln[len("RESULT "):]) for ln in lines]
    for r in results["tfds"]:
        assert r == results["jsonl"][0] and not r["tf"]
