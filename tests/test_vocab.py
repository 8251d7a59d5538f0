"""Every vocabulary is defined once, in vocab.py, and the rules built on it agree with it."""

import re
import sys
from collections import Counter
from pathlib import Path

from infusion_tracker import clinical, vocab

ROOT = Path(__file__).resolve().parent.parent
VOCAB_FILE = ROOT / "infusion_tracker" / "vocab.py"
# Migrations keep their own written-out copy on purpose (see 0002_vocabulary_checks.py).
MIGRATIONS = ROOT / "infusion_tracker" / "migrations" / "versions"


def _sources():
    files = [*(ROOT / "infusion_tracker").rglob("*.py"), *(ROOT / "templates").rglob("*.html")]
    return [f for f in files if f != VOCAB_FILE and MIGRATIONS not in f.parents]


def _entries():
    """(vocabulary name, code, words) for every code -> words entry in vocab.py."""
    for name, value in vars(vocab).items():
        if not (name.isupper() and isinstance(value, dict)):
            continue
        for code, words in value.items():
            if isinstance(words, tuple):  # INSTRUMENTS: (label, low, high)
                words = words[0]
            if isinstance(code, str) and isinstance(words, str):
                yield name, code, words


def copies_outside_vocab() -> list[str]:
    """Each file outside vocab.py that writes a vocabulary out again: two or more of its
    entries as `"code": "words"` (labels or display kinds; one alone may be another list's
    word, e.g. the "Discharge" action), or the flag levels in their order."""
    patterns = [
        (
            f"{name}[{code!r}]",
            re.compile(rf"""["']{re.escape(code)}["']\s*:\s*\(?\s*["']{re.escape(words)}["']"""),
        )
        for name, code, words in _entries()
    ]
    patterns.append(
        ("FLAG_LEVELS", re.compile(r"""["']normal["']\s*[:,]\s*(0\s*,\s*)?["']abnormal["']"""))
    )
    found = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        hits = [
            (what, text.count("\n", 0, match.start()) + 1)
            for what, pattern in patterns
            for match in pattern.finditer(text)
        ]
        per_vocabulary = Counter(what.split("[")[0] for what, _ in hits)
        found += [
            f"{path.relative_to(ROOT)}:{line}: {what}"
            for what, line in hits
            if what == "FLAG_LEVELS" or per_vocabulary[what.split("[")[0]] > 1
        ]
    return found


def test_no_vocabulary_is_written_out_twice():
    assert copies_outside_vocab() == []


def test_the_copy_check_finds_a_copy(tmp_path, monkeypatch):
    # The check above is only worth something if it sees a copy when there is one.
    copy = tmp_path / "copy.py"
    copy.write_text(
        'SHORT = {"nsr": "NSR", "af": "AF"}\nLEVELS = ("normal", "abnormal", "critical")\n'
        'ACTIONS = {"discharge": "Discharge"}\n'
    )
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "_sources", lambda: [copy])
    monkeypatch.setattr(module, "ROOT", tmp_path)
    assert copies_outside_vocab() == [
        "copy.py:1: RHYTHM_SHORT['nsr']",
        "copy.py:1: RHYTHM_SHORT['af']",
        "copy.py:2: FLAG_LEVELS",
    ]


def test_severity_order_and_worst():
    assert vocab.FLAG_LEVELS == ("normal", "abnormal", "critical")
    assert vocab.worst([]) == "normal"
    assert vocab.worst(["abnormal", "normal"]) == "abnormal"
    assert vocab.worst(["abnormal", "critical", "normal"]) == "critical"
    assert clinical.worst is vocab.worst


def test_derived_lists_follow_their_vocabulary():
    assert set(vocab.RHYTHM_SHORT) <= set(vocab.RHYTHMS)
    assert set(vocab.RHYTHMS) >= vocab.UNFLAGGED_RHYTHMS
    assert set(vocab.RHYTHM_FLAG_WORDS) == set(vocab.RHYTHMS) - vocab.UNFLAGGED_RHYTHMS
    assert vocab.RHYTHM_FLAG_WORDS["junctional"] == "Junctional rhythm"
    assert set(vocab.STATUS_KINDS) == set(vocab.STATUSES)
    assert set(vocab.FLAG_KINDS) == set(vocab.FLAG_LEVELS)
    assert set(vocab.AE_SEVERITY_KINDS) == set(vocab.AE_SEVERITIES)
    assert set(vocab.CSSRS_RESULTS) == set(range(vocab.INSTRUMENTS["cssrs"][2] + 1))
    assert (0, 2 * len(clinical.ALDRETE_ITEMS)) == vocab.ALDRETE_TOTAL_RANGE
    assert clinical.IMPOSSIBLE["moaas"][:2] == vocab.MOAAS_RANGE
    assert clinical.IMPOSSIBLE["pain"][:2] == vocab.PAIN_RANGE
    for allowed_from, to in clinical.TRANSITIONS.values():
        assert {*allowed_from, to} <= set(vocab.STATUSES)


def test_models_re_export_the_same_objects():
    from infusion_tracker import models

    for name in ("STATUSES", "PHASES", "RHYTHMS", "AVPU", "ROLES", "INSTRUMENTS", "INDICATIONS"):
        assert getattr(models, name) is getattr(vocab, name)


def test_check_constraint_text():
    assert vocab.sql_in("avpu", vocab.AVPU, blank=True) == "avpu IN ('','A','V','P','U')"
    assert vocab.sql_between("pain", vocab.PAIN_RANGE) == "pain BETWEEN 0 AND 10"
