"""Answer extraction and equivalence for AIME / MATH / GPQA responses.

Model text is untrusted. Nothing here evaluates it as code: extraction is string scanning, integer and letter
answers are compared as strings, and LaTeX equivalence goes through ``math_verify`` restricted to its LaTeX
parser (``LatexExtractionConfig`` only; its ``ExprExtractionConfig`` calls ``sympy.parse_expr``, which uses
``eval``). Even a LaTeX parser can be made to burn CPU (``10^{10^{10}}`` is one C-level big-int operation that no
signal interrupts), so:

* pathological inputs are rejected before parsing (length, nesting depth, exponent towers, huge literals), and
* ``math_verify`` runs in one persistent worker process with a hard wall-clock limit per grade; a worker that
  overruns is killed (SIGKILL) and a fresh one is started on the next call. One reused worker keeps 500 grades
  at a few ms each instead of paying a process start per grade.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "THINK_END_DELIMITERS",
    "Grade",
    "answer_section",
    "last_boxed",
    "extract_answer",
    "normalize_answer",
    "pathology",
    "grade",
    "grade_answer",
    "grade_response",
    "shutdown_grader",
]

KINDS = ("math", "aime", "gpqa")
# Text after the last of these is the answer phase (s1's "<|im_start|>answer"; R1-style "</think>").
THINK_END_DELIMITERS: tuple[str, ...] = ("<|im_start|>answer", "</think>")
MAX_RESPONSE_CHARS = 1_000_000  # s1 at 32K thinking tokens is ~130K chars; beyond 1M chars it is garbage.
MAX_ANSWER_CHARS = 1_000  # longest MATH500 reference answer is 53 chars.
MAX_NESTING = 40
MAX_CARETS = 12
_WORKER_START_TIMEOUT_S = 120.0
_WORKER_MEMORY_BYTES = 4 << 30


@dataclass(frozen=True)
class Grade:
    """One graded response: the extracted answer (None if none was found), the verdict and why."""

    correct: bool
    extracted: str | None
    reason: str  # "exact" | "integer" | "letter" | "math_verify" | "mismatch" | "no_answer" | "rejected: ..." | "timeout"


# ----------------------------------------------------------------------------------------------- extraction


def answer_section(response: str) -> str:
    """The text after the last end-of-thinking delimiter, or the whole response when there is none."""
    best = -1
    best_len = 0
    for delim in THINK_END_DELIMITERS:
        pos = response.rfind(delim)
        if pos > best:
            best, best_len = pos, len(delim)
    return response[best + best_len :] if best >= 0 else response


_BOX_RE = re.compile(r"\\(?:boxed|fbox|framebox)\b")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces (also ``\\boxed 5``).

    Scans occurrences from the end and returns the first one that closes, so a box cut off by the token limit
    does not hide an earlier complete one. Iterative brace counting: no recursion, linear time.
    """
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    for start in reversed(starts):
        i = start
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for k in range(i, len(text)):
                c = text[k]
                if c == "{" and text[k - 1] != "\\":
                    depth += 1
                elif c == "}" and text[k - 1] != "\\":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1 : k]
        elif i > start:  # "\boxed 5": up to whitespace or '$'
            m = re.match(r"[^\s$]+", text[i:])
            if m:
                return m.group(0)
    return None


_ANSWER_LINE_RE = re.compile(r"(?i)(?:final\s+answer|answer)\s*(?:is)?\s*[:：]|final\s+answer\s+is")
_PHRASE_RE = re.compile(
    r"^(?:(?:so|thus|therefore|hence)\b[, ]*)?(?:the\s+)?(?:final\s+)?(?:(?:answer|result)\b)?\s*(?:is\b|=|:)?\s*", re.I
)


def _answer_line(section: str) -> str | None:
    """Text after the last "Final Answer:" / "Answer:" marker: rest of its line, else the next non-empty line."""
    last = None
    for last in _ANSWER_LINE_RE.finditer(section):
        pass
    if last is None:
        return None
    rest = section[last.end() :]
    for line in rest.split("\n"):
        if line.strip():
            return line.strip()
    return None


def extract_answer(response: str, kind: str) -> str | None:
    """The model's final answer as text (kind: "math" | "aime" | "gpqa"), or None when there is none.

    Order, as s1's graders read a response: answer phase only (after the end-of-thinking delimiter), then the last
    ``\\boxed{}``, then a "Final Answer:" / "Answer:" line; for GPQA a bare trailing letter choice is accepted too.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; expected one of {KINDS}")
    if len(response) > MAX_RESPONSE_CHARS:
        return None
    section = answer_section(response)
    found = last_boxed(section)
    if found is None:
        found = _answer_line(section)
    if found is None and kind == "gpqa":
        letters = re.findall(r"(?<![A-Za-z])\(?([A-D])\)?(?![A-Za-z])", section[-200:])
        found = letters[-1] if letters else None
    if found is None:
        return None
    found = found.strip().strip("*").strip()  # markdown bold around "**Final Answer:** x"
    return found or None


# ---------------------------------------------------------------------------------------------- normalising

_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_UNIT_WORDS_RE = re.compile(r"\\?(?:text\{)?\s*(?:degrees?|cm|meters?|units?|inches|feet|dollars?|cents?)\}?$", re.I)


def _strip_phrase(s: str) -> str:
    """Drop a leading "So the final answer is" / "Answer:" so "The answer is 5" compares as "5"."""
    if re.match(r"(?i)(?:so|thus|therefore|hence|the|final|answer|result)\b", s):
        return _PHRASE_RE.sub("", s, count=1)
    return s


def _strip_math(s: str) -> str:
    """Cheap canonical LaTeX: drops delimiters, sizing, spacing, text wrappers, degree signs, trailing dots."""
    s = s.strip()
    s = _strip_phrase(s)
    s = s.replace("$", "").replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    for _ in range(3):
        s = _TEXT_CMD_RE.sub(r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    s = re.sub(r"\\[,;:! ]", "", s).replace("~", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\^\s*\{?\\circ\}?", "", s).replace("°", "")
    s = s.replace("\\%", "").replace("%", "")
    s = _UNIT_WORDS_RE.sub("", s.strip())
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".").strip()


def _as_int(s: str) -> int | None:
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", _strip_math(s))  # 1,000 -> 1000
    if re.fullmatch(r"[+-]?\d{1,12}(?:\.0*)?", t):
        return int(t.split(".")[0])
    return None


def _as_letter(s: str) -> str | None:
    t = _strip_math(s).replace("*", "").strip("() ")
    m = re.match(r"(?i)(?:option|choice)?\s*\(?([A-D])\)?(?:[).:\s]|$)", t + " ")
    return m.group(1).upper() if m else None


def normalize_answer(answer: str | None, kind: str) -> str | None:
    """Canonical string for an extracted answer; equal strings mean equal answers (used by majority voting)."""
    if answer is None or pathology(answer) is not None:
        return None
    if kind == "aime":
        n = _as_int(answer)
        return str(n) if n is not None else (_strip_math(answer) or None)
    if kind == "gpqa":
        return _as_letter(answer)
    return _strip_math(answer) or None


# ------------------------------------------------------------------------------------------------ pathology


def pathology(text: str) -> str | None:
    """Why ``text`` (an extracted answer) is too dangerous or absurd to parse, or None if it is fine."""
    if len(text) > MAX_ANSWER_CHARS:
        return f"answer longer than {MAX_ANSWER_CHARS} chars"
    depth = peak = 0
    for c in text:
        if c in "{([":
            depth += 1
            peak = max(peak, depth)
        elif c in "})]":
            depth -= 1
    if peak > MAX_NESTING:
        return f"nesting deeper than {MAX_NESTING}"
    if text.count("^") > MAX_CARETS or re.search(r"[\w)]\s*\*\*\s*[\w(]", text):
        return "too many powers"
    if re.search(r"\^\s*\{[^{}]*\^", text) or re.search(r"\^\s*[\d.]+\s*\^", text):
        return "exponent tower"
    if re.search(r"\^\s*\{?\s*[-+]?\d{5,}", text) or re.search(r"\d{4,}\s*!", text) or re.search(r"\d{400,}", text):
        return "huge number"
    if "__" in text or "import" in text:
        return "looks like code"
    return None


# ---------------------------------------------------------------------------------------- guarded worker


def _worker_verify(gold: str, pred: str, timeout_s: int) -> bool:
    """Runs inside the worker process: math_verify with its LaTeX parser only."""
    from math_verify import LatexExtractionConfig, parse, verify

    cfg = [LatexExtractionConfig()]

    def as_latex(s: str) -> str:  # currency "\$" is not a delimiter; bare text needs "$...$" to be read as math
        s = s.replace("\\$", "")
        return s if "$" in s else f"${s}$"

    g = parse(as_latex(gold), extraction_config=cfg, parsing_timeout=timeout_s)
    p = parse(as_latex(pred), extraction_config=cfg, parsing_timeout=timeout_s)
    if not g or not p:
        return False
    return bool(verify(g, p, timeout_seconds=timeout_s))


def _worker_main(conn: Any) -> None:
    """Worker loop: ("verify", gold, pred, t) -> bool; ("sleep", s) exists to test the hard time limit."""
    import logging

    try:  # a runaway big-int / expansion then fails with MemoryError instead of swapping the machine
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY_BYTES, _WORKER_MEMORY_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    logging.disable(logging.WARNING)  # math_verify logs every failed parse
    import math_verify  # noqa: F401 - pay the sympy import before saying ready

    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        try:
            if msg[0] == "verify":
                conn.send(("ok", _worker_verify(msg[1], msg[2], msg[3])))
            elif msg[0] == "sleep":
                time.sleep(float(msg[1]))
                conn.send(("ok", True))
            else:
                conn.send(("error", f"unknown op {msg[0]!r}"))
        except Exception as e:  # noqa: BLE001 - any parser failure is a "not equal"
            conn.send(("error", f"{type(e).__name__}: {e}"))


class _GuardedWorker:
    """One spawned worker process, restarted after a crash or a hard timeout. Thread-safe (serialised)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self.restarts = 0

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # fork is unsafe once JAX / XLA threads exist in the parent
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(child,), daemon=True, name="s1jax-grader")
        proc.start()
        child.close()
        if not parent.poll(_WORKER_START_TIMEOUT_S):
            proc.kill()
            raise RuntimeError("grading worker did not start")
        parent.recv()
        self._proc, self._conn = proc, parent

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def call(self, msg: tuple, timeout_s: float) -> tuple[str, Any]:
        """Send one request; ("timeout", None) if no answer within ``timeout_s`` (the worker is then killed)."""
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._kill()
                self._start()
            try:
                self._conn.send(msg)
                if self._conn.poll(timeout_s):
                    return self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as e:
                self._kill()
                return ("error", f"worker died: {e}")
            self._kill()
            self.restarts += 1
            return ("timeout", None)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.send(None)
                except (OSError, BrokenPipeError):
                    pass
            self._kill()


_WORKER = _GuardedWorker()
atexit.register(_WORKER.close)


def shutdown_grader() -> None:
    """Stop the math_verify worker (it restarts lazily on the next grade)."""
    _WORKER.close()


# ------------------------------------------------------------------------------------------------- grading


def grade_answer(answer: str | None, reference: str, kind: str, timeout_s: float = 5.0) -> Grade:
    """Grade an already extracted answer against the reference."""
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; expected one of {KINDS}")
    if answer is None or not answer.strip():
        return Grade(False, None, "no_answer")
    why = pathology(answer)
    if why is not None:
        return Grade(False, answer[:200], f"rejected: {why}")
    if kind == "gpqa":
        got, want = _as_letter(answer), _as_letter(reference) or reference.strip().upper()
        return Grade(got is not None and got == want, answer, "letter" if got == want else "mismatch")
    if kind == "aime":
        got, want = _as_int(answer), _as_int(reference)
        if got is not None and want is not None:
            return Grade(got == want, answer, "integer" if got == want else "mismatch")
    a, r = _strip_math(answer), _strip_math(reference)
    if a and a == r:
        return Grade(True, answer, "exact")
    if pathology(reference) is not None:
        return Grade(False, answer, "rejected: reference")
    pred = _strip_phrase(answer.strip())
    status, value = _WORKER.call(("verify", reference, pred.rstrip(". "), max(1, int(timeout_s))), timeout_s)
    if status == "timeout":
        return Grade(False, answer, "timeout")
    ok = status == "ok" and bool(value)
    return Grade(ok, answer, "math_verify" if ok else "mismatch")


def grade_response(response: str, reference: str, kind: str, timeout_s: float = 5.0) -> Grade:
    """Extract the answer from a full response and grade it; ``Grade.extracted`` is what was compared."""
    if len(response) > MAX_RESPONSE_CHARS:
        return Grade(False, None, f"rejected: response longer than {MAX_RESPONSE_CHARS} chars")
    return grade_answer(extract_answer(response, kind), reference, kind, timeout_s)


def grade(response: str, reference: str, kind: str, timeout_s: float = 5.0) -> bool:
    """True iff the response's final answer equals the reference (docs/contracts.md)."""
    return grade_response(response, reference, kind, timeout_s).correct
