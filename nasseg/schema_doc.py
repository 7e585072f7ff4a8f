"""The reference of every YAML format, generated from the code that reads it.

The pydantic schemas (study, data, training, architecture, ablation) give each key's type,
default and constraints; its description is the field's ``description``, its attribute
docstring, or its entry in the class docstring's ``Attributes:`` section. The search-space
format is parsed by hand (:mod:`nasseg.search.space_parse`), so its grammar is written from
that parser's own constants (leaf kinds, modifiers, stage keys, component defaults) and
the registries of blocks, skips and skip attentions. Nothing here is typed twice, so the
reference cannot drift: ``tests/test_yaml_reference.py`` regenerates it and fails when the
committed ``docs/yaml_reference.md`` differs.

Regenerate after changing a schema::

    python -m nasseg.schema_doc            # writes docs/yaml_reference.md
    python -m nasseg.schema_doc --check    # exit 1 when the file is stale

Example:
    >>> "## Study" in reference()
    True
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types as at
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from nasseg.ablation.config import AblationConfig
from nasseg.arch.config import ArchConfig, StemConfig
from nasseg.blocks import BLOCKS
from nasseg.data.config import DataConfig
from nasseg.search import dists, space_parse
from nasseg.search.space import Constraints, Geometric, _COMPONENTS
from nasseg.search.study import StudyConfig
from nasseg.skips import ATTENTIONS, SKIPS
from nasseg.store.objectives import limit_fields
from nasseg.train.config import TrainConfig

__all__ = ["DOC_PATH", "field_docs", "reference", "write_reference"]

DOC_PATH = Path("docs") / "yaml_reference.md"
"""Where the reference is committed, relative to the repository root."""

_CONSTRAINTS = ((at.Gt, "gt", "> {}"), (at.Ge, "ge", ">= {}"), (at.Lt, "lt", "< {}"), (at.Le, "le", "<= {}"),
                (at.MinLen, "min_length", "at least {} entries"), (at.MaxLen, "max_length", "at most {} entries"))


def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Each field's description: ``Field(description=)``, else the string right after the
    field in the class body, else the class docstring's ``Attributes:`` entry (inherited
    fields from the base that declares them).

    Example:
        >>> from nasseg.data.config import SplitConfig
        >>> field_docs(SplitConfig)["seed"]
        'shuffle seed (also of the ``max_cases`` sample).'
    """
    out: dict[str, str] = {}
    for cls in reversed([c for c in model.__mro__ if isinstance(c, type) and issubclass(c, BaseModel)
                         and c is not BaseModel]):
        out.update(_attributes_section(cls.__doc__ or ""))
        out.update(_attribute_docstrings(cls))
    for name, f in model.model_fields.items():
        if f.description:
            out[name] = f.description
    return {name: " ".join(out.get(name, "").split()) for name in model.model_fields}


def _attributes_section(doc: str) -> dict[str, str]:
    lines = textwrap.dedent("\n".join(doc.splitlines()[1:])).splitlines()
    out: dict[str, str] = {}
    inside, indent, name = False, 0, None
    for line in lines:
        if line.strip() == "Attributes:":
            inside, indent, name = True, len(line) - len(line.lstrip()), None
            continue
        if not inside:
            continue
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            inside = False
            continue
        m = re.match(r"\s+(\w+)(?: \([^)]*\))?: (.*)", line)
        if m and len(line) - len(line.lstrip()) == indent + 4:
            name = m.group(1)
            out[name] = m.group(2)
        elif name and line.strip():
            out[name] += " " + line.strip()
    return out


def _attribute_docstrings(cls: type) -> dict[str, str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):  # a class made by create_model has no source
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    out = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) \
                and isinstance(nxt.value.value, str):
            out[node.target.id] = inspect.cleandoc(nxt.value.value)
    return out


def _type(tp: Any, models: list[type[BaseModel]]) -> str:
    """A readable type; nested models are linked and queued in ``models``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        tag = _tag(tp)
        if tag is not None:  # a registered block, skip or attention: documented by its registry
            return f"[`{tag}`](#{tag})"
        if tp not in models:
            models.append(tp)
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    if origin is typing.Literal:
        return " \\| ".join(f"`{yaml.safe_dump(a, default_flow_style=True).strip().removesuffix('...').strip()}`"
                            for a in args)
    if origin is typing.Annotated:
        return _type(args[0], models) + "".join(f" ({c})" for c in _constraints(args[1:]))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a, models) for a in args)
    if origin in (list, set, frozenset):
        return f"list of {_type(args[0], models)}" if args else "list"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type(args[0], models)}"
        return "[" + ", ".join(_type(a, models) for a in args) + "]"
    if origin is dict:
        return f"mapping of {_type(args[0], models)} to {_type(args[1], models)}" if args else "mapping"
    return getattr(tp, "__name__", str(tp))


def _tag(model: type[BaseModel]) -> str | None:
    """The registered name of a block/skip/attention ``Params`` (its ``type: Literal[name]``)."""
    f = model.model_fields.get("type")
    if f is not None and typing.get_origin(f.annotation) is typing.Literal and len(typing.get_args(f.annotation)) == 1:
        return str(typing.get_args(f.annotation)[0])
    return None


def _constraints(metadata: Any) -> list[str]:
    out = []
    for m in metadata:
        for cls, attr, text in _CONSTRAINTS:
            if isinstance(m, cls):
                out.append(text.format(getattr(m, attr)))
        if isinstance(m, FieldInfo) and m.discriminator:
            out.append(f"picked by `{m.discriminator}`")
        pattern = getattr(m, "pattern", None)
        if isinstance(pattern, str):
            out.append(f"matching `{pattern}`")
    return out


def _default(f: FieldInfo) -> str:
    if f.is_required():
        return "**required**"
    value = f.default_factory() if f.default_factory is not None else f.default
    if value is PydanticUndefined:
        return "–"
    if isinstance(value, BaseModel):
        tag = _tag(type(value))
        value = value.model_dump(mode="json", exclude_defaults=True) | ({"type": tag} if tag else {})
        return "`{}` (every default)" if not value else f"`{_flow(value)}`"
    return f"`{_flow(value)}`"


def _flow(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def _md(text: str) -> str:
    """Docstring reST to Markdown: ``x`` -> `x`, :mod:`a.b` -> `a.b`, :class:`~a.B` -> `B`."""
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: f"`{m.group(1).rsplit('.', 1)[-1] if '~' in m.group(0) else m.group(1)}`",
                  text)
    return text.replace("``", "`")


def _cell(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def model_table(model: type[BaseModel], models: list[type[BaseModel]], skip: tuple[str, ...] = (),
                docs: dict[str, str] | None = None) -> str:
    """A Markdown table of the model's keys: key, type, default, description (``docs``
    fills in fields the model does not describe)."""
    docs = {k: v or (docs or {}).get(k, "") for k, v in field_docs(model).items()}
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, f in model.model_fields.items():
        if name in skip:
            continue
        kind = _type(f.annotation, models)
        extra = _constraints(f.metadata)
        if extra:
            kind += " (" + ", ".join(extra) + ")"
        rows.append(f"| `{name}` | {kind} | {_default(f)} | {_cell(docs[name]) or '–'} |")
    return "\n".join(rows)


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return _md(" ".join(doc.split("\n\n")[0].split()))


def _model_sections(roots: list[type[BaseModel]], level: str = "###", done: set | None = None) -> list[str]:
    """Sections for ``roots`` and every model they reach (each once)."""
    done = set() if done is None else done
    queue, out = list(roots), []
    while queue:
        model = queue.pop(0)
        if model in done:
            continue
        done.add(model)
        found: list[type[BaseModel]] = []
        out += [f"{level} {model.__name__}", "", _summary(model), "", model_table(model, found), ""]
        queue += [m for m in found if m not in done]
    return out


def _registry_sections(title: str, registry: Any, done: set) -> list[str]:
    """One table per registered type of a block/skip/attention registry."""
    out = [f"### {title}", "",
           f"`type` picks the {registry.kind}; its parameters follow. Registered: "
           + ", ".join(f"`{n}`" for n in registry.names()) + ".", ""]
    for name in registry.names():
        cls = registry.get(name)
        params = cls.Params
        done.add(params)
        found: list[type[BaseModel]] = []
        out += [f"#### `{name}`", "", _summary(inspect.getmodule(cls)) or _summary(cls), "",
                model_table(params, found, skip=("type",)) if len(params.model_fields) > 1
                else "No parameters.", ""]
    return out


def _space_section() -> list[str]:
    """The search-space grammar, from the parser's constants."""
    leaf_rows = ["| leaf | YAML | modifiers |", "|---|---|---|", "| fixed | a plain value (`act: gelu`) | – |"]
    shapes = {"choice": "`{choice: [a, b, ...]}` (scalars, no repeats)", "int": "`{int: [low, high]}`",
              "float": "`{float: [low, high]}`"}
    for kind in dists.SPEC_KEYS:
        leaf_rows.append(f"| {kind} | {shapes.get(kind, f'`{{{kind}: ...}}`')} | "
                         + ", ".join(f"`{m}`" for m in sorted(dists._MODIFIERS[kind])) + " |")
    top = [k for k in ArchConfig.model_fields if k not in ("name", "stem", "stages")]
    geometric = [f.name for f in dataclasses.fields(Geometric)]
    defaults = ", ".join(f"`{k}` → `{v}`" for k, v in space_parse._DEFAULT_TYPE.items())
    lines = [
        "## Search space", "",
        _summary(sys.modules["nasseg.search.space"]), "",
        "Read by `nasseg.search.space_parse` (by hand, not a pydantic model); the lists below are "
        "its own constants. A space is shaped like an [architecture](#architecture) in which any "
        "leaf may be sampled.", "",
        "### Leaves", "", *leaf_rows, "",
        "`per_stage: true` draws one value per stage (only under `stages`); `log: true` samples on a "
        "log scale (low > 0, no step); `step` is the grid spacing.", "",
        "### Top level", "",
        "| key | what |", "|---|---|",
        *[f"| `{k}` | {'the space itself (not sampled)' if k in space_parse._RESERVED else 'a leaf over ArchConfig.' + k}"
          f"{' (required, fixed 2 or 3)' if k == 'spatial_dims' else ''} |"
          for k in (*space_parse._RESERVED, *top)],
        f"| `stem` | null, or a mapping of [StemConfig](#stemconfig) keys ({', '.join(StemConfig.model_fields)}), "
        "each a leaf |",
        "| `stages` | **required**: one template for every stage (below) |", "",
        "### stages", "",
        "| key | what |", "|---|---|",
        *[f"| `{k}` | {_stage_key_text(k, geometric)} |" for k in space_parse._STAGE_KEYS], "",
        f"A component (`{'`, `'.join(_COMPONENTS)}`) is a mapping: `type` (a leaf over the registered "
        f"names; when left out: {defaults}), then generic keys (sampled only for the chosen types that "
        "have that field) and per-type sections (`block: {segnetr: {window_size: ...}}`, sampled only "
        "when that type is chosen). The decoder side (`decoder_depth`, `skip`, `skip_attention`) is not "
        "sampled for the deepest stage.", "",
        "### constraints", "",
        _summary(Constraints), "", model_table(Constraints, [], docs=_constraint_docs()), "",
    ]
    return lines


def _constraint_docs() -> dict[str, str]:
    """The limit fields from the objective registry (their ``constraint`` key and unit)."""
    docs = {"input_size": "the spatial size every limit is measured at (required with a limit)",
            "batch": "the batch size every limit is measured at"}
    docs |= {key: f"largest {o.label} ({o.unit}) of a network that may be trained; over it, the network is "
                  "recorded with its costs and not trained" for key, o in limit_fields().items()}
    return docs


def _stage_key_text(key: str, geometric: list[str]) -> str:
    return {
        "n": "**required**: the number of stages (a leaf of integers >= 2)",
        "width": "**required**: a leaf (optionally `per_stage`), a list of widths, or a geometric width "
                 f"`{{{', '.join(geometric)}}}` (`base * factor**i`, rounded to `round_to`)",
        "depth": "encoder blocks per stage (a leaf, optionally `per_stage`)",
        "decoder_depth": "decoder blocks per stage (0 needs a skip that fuses)",
        "block": "the block component (below)", "skip": "the skip component (below)",
        "skip_attention": "the skip-attention component (below; `none` allowed)",
    }.get(key, "see `nasseg.search.space_parse`")


def reference() -> str:
    """The whole reference, as Markdown."""
    done: set = set()
    out = ["<!-- generated by `python -m nasseg.schema_doc` from the schemas; do not edit by hand -->", "",
           "# nasseg YAML reference", "",
           "Every file nasseg reads: a [study](#study) (`nasseg search`), a [search space](#search-space), "
           "a [dataset](#data), [training settings](#training), an [architecture](#architecture) "
           "(`nasseg train`, `nasseg profile`) and an [ablation study](#ablation) (`nasseg ablate`). "
           "Unknown keys are errors that name the file and the key, with a suggestion.", ""]
    for title, intro, model in (
            ("Study", "`nasseg search STUDY.yaml`.", StudyConfig),
            ("Data", "The `data:` section of a study or an ablation, or a data-config YAML "
                     "(`nasseg train --data FILE.yaml`).", DataConfig),
            ("Training", "The `train:` section of a study or an ablation, or `nasseg train --train-config`.",
             TrainConfig),
            ("Architecture", "A network: `nasseg train ARCH.yaml`, `initial_archs`, exports.", ArchConfig),
            ("Ablation", "`nasseg ablate STUDY.yaml`.", AblationConfig)):
        out += [f"## {title}", "", intro, "", _summary(sys.modules[model.__module__]), ""]
        out += _model_sections([model], done=done)
        if model is ArchConfig:
            for name, reg in (("Blocks", BLOCKS), ("Skips", SKIPS), ("Skip attentions", ATTENTIONS)):
                out += _registry_sections(name, reg, done)
    out += _space_section()
    return "\n".join(out).rstrip() + "\n"


def write_reference(root: str | Path = ".") -> Path:
    """Write :data:`DOC_PATH` under ``root``; returns its path."""
    path = Path(root) / DOC_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reference(), encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover
    if "--check" in sys.argv[1:]:
        stale = not DOC_PATH.is_file() or DOC_PATH.read_text(encoding="utf-8") != reference()
        print(f"{DOC_PATH}: {'stale: run python -m nasseg.schema_doc' if stale else 'up to date'}")
        sys.exit(1 if stale else 0)
    print(f"wrote {write_reference()}")
