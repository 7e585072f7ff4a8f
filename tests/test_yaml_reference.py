"""docs/yaml_reference.md is generated from the schemas and the space parser's constants;
it fails here when a schema changed and the file was not regenerated
(``python -m nasseg.schema_doc``)."""
from __future__ import annotations

from pathlib import Path

from nasseg.ablation.config import AblationConfig
from nasseg.arch.config import ArchConfig
from nasseg.blocks import BLOCKS
from nasseg.data.config import DataConfig, SplitConfig
from nasseg.schema_doc import DOC_PATH, field_docs, reference
from nasseg.search import dists, space_parse
from nasseg.search.study import StudyConfig
from nasseg.skips import ATTENTIONS, SKIPS
from nasseg.train.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent


def test_the_committed_reference_is_fresh():
    committed = (REPO / DOC_PATH).read_text(encoding="utf-8")
    assert committed == reference(), f"{DOC_PATH} is stale: run `python -m nasseg.schema_doc` and commit it"


def test_every_key_of_every_format_is_in_the_reference():
    text = reference()
    for title in ("## Study", "## Data", "## Training", "## Architecture", "## Ablation", "## Search space"):
        assert f"\n{title}\n" in text
    for model in (StudyConfig, DataConfig, SplitConfig, TrainConfig, ArchConfig, AblationConfig):
        section = text.split(f"### {model.__name__}\n", 1)[1].split("\n### ", 1)[0]
        for name in model.model_fields:
            assert f"| `{name}` |" in section, f"{model.__name__}.{name}"
    for registry in (BLOCKS, SKIPS, ATTENTIONS):
        for name in registry.names():
            assert f"#### `{name}`" in text


def test_the_space_grammar_comes_from_the_parser():
    text = reference().split("## Search space", 1)[1]
    for kind in dists.SPEC_KEYS:
        assert f"| {kind} |" in text
        for modifier in dists._MODIFIERS[kind]:
            assert f"`{modifier}`" in text
    for key in space_parse._STAGE_KEYS:
        assert f"| `{key}` |" in text
    for key in space_parse._RESERVED:
        assert f"| `{key}` |" in text


def test_descriptions_come_from_the_docstrings():
    """Attributes: sections, attribute docstrings and Field(description=) all count."""
    assert field_docs(TrainConfig)["epochs"] == "passes over the training cases."
    assert field_docs(ArchConfig)["name"] == "a label; not part of arch_id"
    assert field_docs(ArchConfig)["stages"].startswith("the resolution levels")  # Attributes: section
    assert field_docs(AblationConfig)["base"].startswith("preset name or ArchConfig YAML path")
    from nasseg.arch.config import StageConfig

    assert field_docs(StageConfig)["down"].startswith("How the network enters this stage")


def test_linked_from_the_readme():
    assert str(DOC_PATH) in (REPO / "README.md").read_text(encoding="utf-8")
