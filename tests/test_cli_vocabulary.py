"""One command-line vocabulary: every sub-command's flags, listed by walking the parser.

Outputs are ``-o/--out``, a study name is ``--study``, progress is ``--no-progress``; the
older spellings still parse but are hidden. Every visible option has help text that says
its default (flags and required options aside).
"""
from __future__ import annotations

import argparse

import pytest

from nasseg.cli import build_parser, main
from nasseg.cli.vocabulary import OUT_ALIASES, PROGRESS_ALIASES, STUDY_ALIASES, YAML_REFERENCE

PARSER = build_parser()
COMMANDS = PARSER.leaves()
OLD_SPELLINGS = {*OUT_ALIASES, *STUDY_ALIASES, *PROGRESS_ALIASES}
"""A second visible spelling for outputs, study names or progress."""


def visible(p) -> list[argparse.Action]:
    return [a for a in p.options if a.option_strings and a.help is not argparse.SUPPRESS]


def flags() -> list[tuple[str, argparse.Action]]:
    return [(name, a) for name, p in COMMANDS.items() for a in visible(p)]


def test_the_walk_finds_every_command():
    assert {"search", "pareto", "export", "train", "ablate", "report", "confirm", "predict", "evaluate",
            "stats", "presets", "profile", "bench train", "bench gpu", "bench record", "bench search"} <= set(COMMANDS)
    assert len(flags()) > 100


def test_no_second_spelling_for_outputs_study_names_or_progress():
    bad = [f"nasseg {name}: {'/'.join(a.option_strings)}" for name, a in flags()
           if OLD_SPELLINGS & set(a.option_strings)]
    assert bad == []
    outputs = [(name, a.option_strings) for name, a in flags() if "--out" in a.option_strings]
    assert outputs and all(opts == ["-o", "--out"] for _, opts in outputs), outputs


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_that_states_its_default(name):
    """Flags (``store_true``) and required options have no default to state."""
    p = COMMANDS[name]
    formatter = p.formatter_class(prog=p.prog)
    missing, no_default = [], []
    for a in visible(p):
        if a.option_strings == ["-h", "--help"]:
            continue
        if not (a.help or "").strip():
            missing.append("/".join(a.option_strings))
            continue
        text = formatter._expand_help(a)
        if a.nargs != 0 and not a.required and "default" not in text:
            no_default.append(f"{'/'.join(a.option_strings)}: {text}")
    assert missing == [], f"nasseg {name}: options without help"
    assert no_default == [], f"nasseg {name}: help that does not state the default"


@pytest.mark.parametrize("argv, dest, value", [
    (["train", "cmunext_s", "--run-dir", "r"], "out", "r"),
    (["train", "cmunext_s", "-o", "r"], "out", "r"),
    (["search", "s.yaml", "--output-dir", "r"], "output_dir", "r"),
    (["search", "s.yaml", "--out", "r"], "output_dir", "r"),
    (["ablate", "a.yaml", "--output", "r"], "output", "r"),
    (["ablate", "a.yaml", "--name", "n"], "study_name", "n"),
    (["ablate", "a.yaml", "--study", "n"], "study_name", "n"),
    (["report", "s.db", "--study-name", "n"], "study_name", "n"),
    (["pareto", "s.db", "--name", "n"], "study_name", "n"),
    (["confirm", "s.yaml", "--progress"], "no_progress", False),
    (["confirm", "s.yaml", "--no-progress"], "no_progress", True),
    (["ablate", "a.yaml"], "no_progress", False),
    (["export", "s.yaml#3", "--output", "a.yaml"], "output", "a.yaml"),
    (["stats", "r.csv", "--baseline", "b", "--output", "t"], "output", "t"),
    (["search", "s.yaml", "--verbose"], "verbose", True),
    (["--verbose", "search", "s.yaml"], "verbose", True),
    (["search", "s.yaml"], "verbose", False),
])
def test_old_spellings_still_parse(argv, dest, value):
    assert getattr(PARSER.parse_args(argv), dest) == value


def test_help_prints_percent_signs_once_and_links_the_yaml_reference(capsys):
    with pytest.raises(SystemExit):
        main(["confirm", "--help"])
    out = capsys.readouterr().out
    assert "95%" in out and "%%" not in out
    assert YAML_REFERENCE in " ".join(out.split())
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--epochs EPOCHS passes over the training cases (default: 20" in text
    assert "--run-dir" not in text and "-o PATH, --out PATH" in text


def test_a_search_is_quiet_and_a_finished_one_says_its_budget_is_reached(tmp_path, capfd):
    """Optuna's INFO line ("A new study created in RDB") is off without --verbose; running a
    study whose trial budget is spent trains nothing and says how to go on."""
    import optuna
    from test_search_helpers import TINY_SPACE, make_study

    space = {**TINY_SPACE, "stages": {**TINY_SPACE["stages"], "width": {"choice": [4, 8]}}}
    study = make_study(tmp_path, space_dict=space, budget={"trials": 1})
    optuna.logging.set_verbosity(optuna.logging.INFO)  # Optuna's own default
    assert main(["search", str(study), "--no-progress"]) == 0
    first = capfd.readouterr()
    assert "A new study created" not in first.err + first.out
    assert "budget reached (1 trained networks); use --trials to continue" in first.out
    assert main(["search", str(study), "--no-progress"]) == 0
    again = capfd.readouterr().out
    assert "1 distinct networks trained" in again and "budget reached (1 trained networks)" in again


@pytest.mark.parametrize("verbose", [False, True])
def test_ray_and_optuna_banners_are_off_unless_verbose(verbose):
    """What quiet_libraries switches off (measured with `nasseg search --backend ray`: without
    it, Tune's configuration table, its TensorBoard hint, Ray's token warning, Ray's INFO lines,
    "save not implemented for Searcher" and Optuna's "A new study created in RDB" are printed)."""
    import json
    import subprocess
    import sys

    code = ("import argparse, json, logging, os, optuna\n"
            "from nasseg.cli.console import RAY_QUIET_ENV, RAY_QUIET_LOGGERS, quiet_libraries\n"
            f"quiet_libraries(argparse.Namespace(verbose={verbose}))\n"
            "print(json.dumps({'env': {k: os.environ.get(k) for k in RAY_QUIET_ENV},\n"
            "  'levels': [logging.getLogger(n).level for n in RAY_QUIET_LOGGERS],\n"
            "  'optuna': optuna.logging.get_verbosity()}))")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("RAY_")}
    out = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    check=True).stdout)
    if verbose:
        assert out == {"env": {"RAY_LOGGER_LEVEL": None, "RAY_AIR_NEW_OUTPUT": None}, "levels": [0, 0],
                       "optuna": 20}
    else:
        assert out == {"env": {"RAY_LOGGER_LEVEL": "warning", "RAY_AIR_NEW_OUTPUT": "0"}, "levels": [40, 40],
                       "optuna": 30}
