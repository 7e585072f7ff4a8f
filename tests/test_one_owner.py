"""One owner per concept: a JSON converter, an out-of-memory check, a dataset decode key
derived from the model (a field added later can never return a stale cached dataset)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from nasseg.data import DataConfig, decode_key, resolve_data
from nasseg.errors import is_out_of_memory
from nasseg.jsonsafe import json_safe


def test_a_field_added_to_the_data_model_enters_the_decode_key():
    class Grown(DataConfig):  # a copy of the model with one field more
        new_decoding_setting: int = 0

    base = resolve_data("synthetic", n_cases=4).model_dump()
    assert decode_key(Grown(**base)) != decode_key(Grown(**base, new_decoding_setting=1))
    # what does not change the decoded cases leaves the key alone
    assert decode_key(Grown(**base)) == decode_key(Grown(**{**base, "patch_size": [16, 16, 16]}))


def test_one_json_converter_for_records_and_run_files():
    from nasseg.store import records
    from nasseg.train import result

    assert records.json_safe is json_safe and result.json_safe is json_safe
    value = {"a": np.float32(0.25), "b": (np.int64(3), float("nan")), "c": torch.tensor([1.5, 2.0]), 4: "x"}
    assert json_safe(value) == {"a": 0.25, "b": [3, None], "c": [1.5, 2.0], "4": "x"}


@pytest.mark.parametrize(("failure", "oom"), [
    (MemoryError(), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB"), True),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    ("CPU out of memory at epoch 3 (batch 8, patch 96x96x64)", True),   # a stored fail reason
    ("OutOfMemoryError: ray worker", True),
    (RuntimeError("shape mismatch"), False), ("non-finite loss at epoch 2", False), (None, False),
])
def test_one_out_of_memory_check_for_errors_and_stored_reasons(failure, oom):
    assert is_out_of_memory(failure) is oom



def test_the_out_of_memory_markers_are_written_once():
    """No module but nasseg/errors.py keeps its own list of out-of-memory words (search
    admission had one, narrower: it missed the CPU allocator's "can't allocate memory")."""
    from nasseg.errors import OOM_MARKERS

    package = Path(__file__).resolve().parents[1] / "nasseg"
    found = [f"{p.relative_to(package.parent)}:{line}: {text!r}" for p in sorted(package.rglob("*.py"))
             if p.name != "errors.py" or p.parent != package
             for line, text in _code_strings(p) if text.lower() in OOM_MARKERS]
    assert not found, "out-of-memory checks outside nasseg.errors.is_out_of_memory:\n" + "\n".join(found)

UNIT_WORDS = re.compile(r"GMACs|GFLOPs|\((?:ms|MB|M)\)|\bM params\b")
"""How an objective's unit is written (the registry's unit, column and suffix texts)."""


def _code_strings(path: Path):
    """The string constants of a module that are not docstrings, with their line."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            yield n.lineno, n.value


def test_no_module_outside_the_registry_names_an_objective_unit():
    """Labels, units and number formats come from nasseg.store.objectives (FLOPs included)."""
    package = Path(__file__).resolve().parents[1] / "nasseg"
    registry = package / "store" / "objectives.py"
    found = [f"{p.relative_to(package.parent)}:{line}: {text!r}" for p in sorted(package.rglob("*.py"))
             if p != registry for line, text in _code_strings(p) if UNIT_WORDS.search(text)]
    assert not found, "objective units written outside the registry:\n" + "\n".join(found)


def test_the_size_rule_and_its_message_exist_once(tmp_path):
    """'input sizes divide by 2^(stages-1)' is stated by nasseg.arch.config.check_divisible
    alone; a study whose data does not divide gets that message, naming the file."""
    from test_search_helpers import TINY_SPACE, make_study

    from nasseg.errors import ConfigError
    from nasseg.search.setup import prepare

    package = Path(__file__).resolve().parents[1] / "nasseg"
    stated = sorted({str(p.relative_to(package.parent)) for p in package.rglob("*.py")
                     for _, text in _code_strings(p) if "not divisible by" in text})
    assert stated == ["nasseg/arch/config.py"]
    space = {**TINY_SPACE, "constraints": {}}
    study = make_study(tmp_path, space_dict=space, data={"source": "synthetic", "n_cases": 8, "size": 30})
    with pytest.raises(ConfigError, match=r"study\.yaml: data: the input size \[30, 30\] is not divisible by "
                                          r"2\^\(stages-1\) = 4 \(the deepest networks of .*tiny_space\.yaml: 3 stages\); "
                                          r"set constraints\.input_size there, or a patch_size/size that is a "
                                          r"multiple of 4 \(e\.g\. \[32, 32\]\)"):
        prepare(study)


def test_override_routing_lists_are_the_models_fields():
    """The keys resolve_data and the search's command-line overrides route are read off the
    models, so a field added to either is routed (no hand-kept list to forget)."""
    from nasseg.data import AugmentConfig
    from nasseg.data import config as data_config
    from nasseg.search import setup
    from nasseg.search.study import BudgetConfig

    assert data_config._AUG_KEYS == set(AugmentConfig.model_fields)
    assert setup._BUDGET_KEYS == tuple(BudgetConfig.model_fields)
    assert resolve_data("synthetic", n_cases=4, **{k: False for k in AugmentConfig.model_fields if k != "intensity"}
                        ).augment.flip is False
