"""``--lang ko``: the gettext catalog is complete and compiled from its .po, every experiment speaks
Korean, and the numbers it prints are the same in both languages (only the words change)."""

import importlib.util
import io
import json
import re
import string
from collections import Counter
from pathlib import Path

import pytest

from compare import i18n
from compare.experiments import EXPERIMENTS, Session
from conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
HANGUL = re.compile(r"[\uac00-\ud7a3]")
NUMBER = re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?%?")
SMALL = {  # each experiment at a size that runs in about a second: the words, not the findings, are tested
    "graph": {},
    "chain-rule": {},
    "vanishing-gradients": {"steps": 3, "width": 8, "depth": 4},
    "learning-rate": {"steps": 3, "lrs": (0.3, 30.0)},
    "batch-size": {"steps": 3},
    "optimizers": {"steps": 3, "optimizers": ("sgd", "adam")},
    "overfitting": {"steps": 3, "train_size": 20, "val_size": 20, "hidden": (16,)},
    "init": {"steps": 3, "inits": 2},
}


def load_catalog_script():
    spec = importlib.util.spec_from_file_location("catalog", ROOT / "scripts" / "catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


catalog = load_catalog_script()
KO_PO = catalog.LOCALE / "ko" / "LC_MESSAGES" / f"{catalog.DOMAIN}.po"


def fields(template: str) -> list[tuple[str, str]]:
    return sorted((name, spec) for _, name, spec, _ in string.Formatter().parse(template) if name is not None)


def test_the_committed_mo_is_the_po_compiled():
    assert KO_PO.with_suffix(".mo").read_bytes() == catalog.compile_mo(catalog.read_po(KO_PO))


def test_every_marked_message_has_a_korean_translation_and_nothing_else_is_in_the_catalog():
    found, entries = catalog.messages(), catalog.read_po(KO_PO)
    assert [m for m in found if not entries.get(m)] == []
    assert [m for m in entries if m and m not in found] == []
    assert all(experiment.summary in found for experiment in EXPERIMENTS.values())  # --list, marked with N_


def test_each_translation_keeps_the_placeholders_of_its_message():
    for message, translated in catalog.read_po(KO_PO).items():
        if message:
            assert fields(translated) == fields(message), message


def test_the_catalog_round_trips_through_the_standard_gettext():
    with i18n.language("ko"):
        assert i18n._("conclusion: {conclusion}") == "결론: {conclusion}"
        assert i18n._("not in the catalog") == "not in the catalog"
    assert i18n._("conclusion: {conclusion}") == "conclusion: {conclusion}"  # English again outside the block
    with pytest.raises(ValueError, match="unknown language"):
        i18n.translation("fr")


def run_in(lang: str, name: str) -> tuple[dict, list[str]]:
    experiment = EXPERIMENTS[name]
    session = Session(name, None, io.StringIO(), tensorboard=False)
    with i18n.language(lang):
        outcome = experiment.run(experiment.params(**SMALL[name]), session)
        lines = [*outcome.table, session.parity_line(), outcome.conclusion]
    return outcome.numbers, lines


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_both_languages_print_the_same_numbers(name):
    numbers_en, lines_en = run_in("en", name)
    numbers_ko, lines_ko = run_in("ko", name)
    assert json.dumps(numbers_en) == json.dumps(numbers_ko)  # bit for bit, NaN included
    text_en, text_ko = "\n".join(lines_en), "\n".join(lines_ko)
    assert not HANGUL.search(text_en)
    assert HANGUL.search(lines_ko[-1]), lines_ko[-1]  # the conclusion is Korean
    assert Counter(NUMBER.findall(text_en)) == Counter(NUMBER.findall(text_ko))
    assert len(lines_en) == len(lines_ko)


def test_lang_ko_on_the_command_line(tmp_path, capsys):
    status, out, _ = invoke(["experiment", "chain-rule", "--lang", "ko", "--logdir", str(tmp_path)], capsys)
    assert status == 0
    assert re.search(r"^결론: 노트의 유도가", out, re.M) and re.search(r"^일치: 값과 기울기 \d+개", out, re.M)
    steps = ["1. 초기화", "2. 미니 배치", "3. 오차 역전파", "4. 갱신", "5. 반복"]  # the notes' training loop
    positions = [out.find(f"\n{step}") for step in steps]
    assert -1 not in positions and positions == sorted(positions), positions
    (root,) = tmp_path.iterdir()
    summary = json.loads((root / "summary.json").read_text())
    assert summary["lang"] == "ko" and summary["conclusion"].startswith("노트의 유도가")


def test_list_in_korean_and_a_bad_language(tmp_path, capsys):
    status, out, _ = invoke(["experiment", "--list", "--lang", "ko"], capsys)
    assert status == 0 and all(HANGUL.search(line) for line in out.splitlines())
    status, _, err = invoke(["experiment", "graph", "--lang", "fr", "--logdir", str(tmp_path)], capsys)
    assert status == 2 and "invalid choice" in err and not any(tmp_path.iterdir())
