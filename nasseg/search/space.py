"""Declarative search spaces over :class:`~nasseg.arch.ArchConfig`, sampled by Optuna.

A space is a YAML file shaped like an architecture config in which any leaf may be
a fixed value or a ``choice``/``int``/``float`` leaf (see :mod:`nasseg.search.dists`).
Under ``stages`` one template describes every stage: a leaf is *tied* (one value for
all stages) unless it says ``per_stage: true``. Block, skip and skip-attention
parameters are *conditional*: a generic key (``stages.block.kernel_size``) is sampled
only for stages whose sampled type has that field, and a per-type section
(``stages.block.segnetr.window_size``) only when that type is chosen::

    name: tiny
    spatial_dims: 2
    stem: {kernel_size: 3}
    stages:
      n: {choice: [4, 5]}                           # number of resolution levels
      width: {base: {choice: [8, 16]}, factor: 2}   # geometric: base * factor**i
      depth: {int: [1, 2], per_stage: true}
      block:
        type: {choice: [conv, cmunext, segnetr]}
        kernel_size: {choice: [3, 7]}               # conv and cmunext (and segnetr's dwconv)
        segnetr: {window_size: {choice: [4, 8]}}    # only when the block is segnetr
      skip: {type: {choice: [concat, skip_fusion]}}
      skip_attention: {type: {choice: [none, csab]}}
    constraints: {input_size: [256, 256], max_params: 1000000, max_gmacs: 2.0}

Optuna parameter names are the dotted paths: ``stages.depth`` when tied,
``stages.2.depth`` per stage, ``stages.block.segnetr.window_size`` for a per-type key.
The decoder-side fields (``decoder_depth``, ``skip``, ``skip_attention``) are not
sampled for the deepest stage, which has no decoder; it keeps the defaults, so two
networks that differ only there get the same :func:`~nasseg.arch.arch_id`.

Example:
    >>> space = load_space("search_spaces/lightweight_2d.yaml")
    >>> arch = space.sample(TrialSource(trial), in_channels=3, out_channels=1)
    >>> space.params_for(load_arch("cmunext_s"))   # the params that rebuild a preset
    {'stages.n': 5, 'stages.width.base': 8, ...}
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt, create_model

from nasseg.arch.config import ArchConfig, arch_id
from nasseg.blocks import BLOCKS
from nasseg.configio import validate
from nasseg.errors import ConfigError
from nasseg.search.dists import Dist, Fixed, Leaf
from nasseg.search.sources import ArchSource, FixedSource, Source
from nasseg.skips import ATTENTIONS, SKIPS, fuses
from nasseg.store.objectives import limit_fields

_DECODER_SIDE = ("decoder_depth", "skip", "skip_attention")
_COMPONENTS = {"block": BLOCKS, "skip": SKIPS, "skip_attention": ATTENTIONS}


_CONSTRAINTS_DOC = """Hard limits on a sampled network, measured at ``input_size`` (spatial) and ``batch``.

A network over any limit is recorded with its costs and never trained. The limit fields
are the ``constraint`` keys of the objective registry (:mod:`nasseg.store.objectives`:
``max_params``, ``max_gmacs``, ``max_latency_ms``, ``max_memory_mb``, ...), each in the
unit of its objective.
"""


class _ConstraintsBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_size: list[PositiveInt] | None = None
    batch: PositiveInt = 1

    def limits(self) -> dict[str, float]:
        """``{objective name: max}`` for the limits that are set."""
        return {o.name: float(getattr(self, key)) for key, o in limit_fields().items()
                if getattr(self, key) is not None}


Constraints = create_model(
    "Constraints", __base__=_ConstraintsBase, __doc__=_CONSTRAINTS_DOC,
    **{key: (PositiveFloat | None, None) for key in limit_fields()})


@dataclass
class Geometric:
    """Widths ``round(base * factor**i / round_to) * round_to`` for stage ``i``."""

    base: Leaf
    factor: Leaf
    round_to: int = 1

    def widths(self, src: Source, n: int) -> list[int]:
        base = pick(src, "stages.width.base", self.base, ["stages.0.width"])
        factor = pick(src, "stages.width.factor", self.factor,
                      lambda a: a["stages"][1]["width"] / a["stages"][0]["width"])
        return [max(self.round_to, int(round(base * factor**i / self.round_to)) * self.round_to)
                for i in range(n)]


@dataclass
class Component:
    """The space of one block, skip or skip attention: its type and its parameters."""

    kind: str
    type: Leaf
    generic: dict[str, Leaf] = field(default_factory=dict)
    specific: dict[str, dict[str, Leaf]] = field(default_factory=dict)

    def fields(self, type_name: str) -> list[str]:
        if type_name == "none":
            return []
        return [k for k in _COMPONENTS[self.kind].get(type_name).Params.model_fields if k != "type"]


@dataclass
class StageSpace:
    n: Leaf
    width: Leaf | Geometric | list[int]
    fields: dict[str, Leaf]
    components: dict[str, Component]


def pick(src: Source, name: str, leaf: Leaf, where: Any) -> Any:
    """A fixed leaf's value, or the value ``src`` gives the parameter ``name``."""
    return leaf.value if isinstance(leaf, Fixed) else src.pick(name, leaf, where)


@dataclass
class SearchSpace:
    """A parsed, checked search space. Build it with :func:`load_space` or :func:`parse_space`."""

    name: str
    description: str
    source: str
    top: dict[str, Leaf]
    stem: dict[str, Leaf] | None
    stages: StageSpace
    constraints: Constraints
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def spatial_dims(self) -> int | None:
        leaf = self.top.get("spatial_dims")
        return leaf.value if isinstance(leaf, Fixed) else None

    @property
    def max_stages(self) -> int:
        """The most stages a sampled network can have."""
        n = self.stages.n
        return max(n.choices) if isinstance(n, Dist) and n.kind == "choice" else (
            int(n.high) if isinstance(n, Dist) else n.value)

    # -- sampling -----------------------------------------------------------------------------
    def sample(self, src: Source, in_channels: int | None = None,
               out_channels: int | None = None) -> dict[str, Any]:
        """One architecture dict (not yet validated) with its values taken from ``src``.

        ``in_channels``/``out_channels`` (from the dataset) override the space's.
        """
        arch: dict[str, Any] = {"name": self.name}
        for key, leaf in self.top.items():
            arch[key] = pick(src, key, leaf, [key])
        if self.stem is not None:
            arch["stem"] = {k: pick(src, f"stem.{k}", leaf, [f"stem.{k}"]) for k, leaf in self.stem.items()}
        if in_channels is not None:
            arch["in_channels"] = in_channels
        if out_channels is not None:
            arch["out_channels"] = out_channels
        st = self.stages
        n = pick(src, "stages.n", st.n, lambda a: len(a["stages"]))
        stages: list[dict[str, Any]] = [{} for _ in range(n)]
        if isinstance(st.width, Geometric):
            widths = st.width.widths(src, n)
        elif isinstance(st.width, list):
            if n > len(st.width):
                raise ConfigError(f"{self.source}: stages.width: {len(st.width)} widths for {n} stages")
            widths = st.width[:n]
        else:
            widths = None
        if widths is not None:
            for s, w in zip(stages, widths):
                s["width"] = w
        else:
            _assign(src, stages, "width", st.width, range(n))
        for kind, comp in st.components.items():
            _component(src, stages, comp, range(n - 1) if kind in _DECODER_SIDE else range(n))
        for key, leaf in st.fields.items():
            idx = range(n - 1) if key in _DECODER_SIDE else range(n)
            if key == "decoder_depth":
                _decoder_depth(src, stages, leaf, idx)
            else:
                _assign(src, stages, key, leaf, idx)
        arch["stages"] = stages
        return arch

    def build(self, src: Source, in_channels: int, out_channels: int) -> ArchConfig:
        """``sample`` then validate; an invalid combination raises ConfigError with the reason."""
        return validate(ArchConfig, self.sample(src, in_channels, out_channels), "sampled architecture")

    def params_for(self, arch: ArchConfig, in_channels: int | None = None,
                   out_channels: int | None = None, label: str = "architecture") -> dict[str, Any]:
        """The parameters that make this space produce ``arch`` (to enqueue a known network).

        Raises:
            ConfigError: naming the field where ``arch`` lies outside the space.
        """
        target = arch.model_copy(update={k: v for k, v in (("in_channels", in_channels),
                                                           ("out_channels", out_channels)) if v})
        n = self.stages.n
        if isinstance(n, Fixed) and n.value != len(target.stages):
            raise ConfigError(f"{self.source}: stages.n: the space has {n.value} stages, "
                              f"{label} has {len(target.stages)}")
        src = ArchSource(target.canonical(), label, self.source)
        self.sample(src, target.in_channels, target.out_channels)
        rebuilt = self.build(FixedSource(src.params), target.in_channels, target.out_channels)
        if arch_id(rebuilt) != arch_id(target):
            diff = _diff(rebuilt.canonical(), target.canonical())
            raise ConfigError(f"{self.source}: {label} is outside this space: "
                              + "; ".join(f"{p}: space gives {a!r}, {label} has {b!r}" for p, a, b in diff[:4]))
        return src.params

    def param_leaves(self) -> dict[str, Dist]:
        """Every parameter this space can suggest, by name (the union over all conditions)."""
        out: dict[str, Dist] = {}

        def add(name: str, leaf: Leaf) -> None:
            if isinstance(leaf, Dist):
                out[name] = leaf

        for key, leaf in self.top.items():
            add(key, leaf)
        for key, leaf in (self.stem or {}).items():
            add(f"stem.{key}", leaf)
        st = self.stages
        add("stages.n", st.n)
        max_n = self.max_stages

        def staged(key: str, leaf: Leaf, decoder: bool) -> None:
            if isinstance(leaf, Dist) and leaf.per_stage:
                for i in range(max_n - 1 if decoder else max_n):
                    add(f"stages.{i}.{key}", leaf)
            else:
                add(f"stages.{key}", leaf)

        if isinstance(st.width, Geometric):
            add("stages.width.base", st.width.base)
            add("stages.width.factor", st.width.factor)
        elif not isinstance(st.width, list):
            staged("width", st.width, False)
        for key, leaf in st.fields.items():
            staged(key, leaf, key in _DECODER_SIDE)
            if key == "decoder_depth" and isinstance(unfused := _unfused(leaf), Dist):
                staged(f"{key}.{_UNFUSED}", unfused, True)
        for kind, comp in st.components.items():
            dec = kind in _DECODER_SIDE
            staged(f"{kind}.type", comp.type, dec)
            for key, leaf in comp.generic.items():
                staged(f"{kind}.{key}", leaf, dec)
            for t, params in comp.specific.items():
                for key, leaf in params.items():
                    staged(f"{kind}.{t}.{key}", leaf, dec)
        return out

    def grid(self, max_points: int = 1_000_000) -> dict[str, list[Any]]:
        """The search space for Optuna's GridSampler (discrete leaves only)."""
        grid: dict[str, list[Any]] = {}
        total = 1
        for name, leaf in self.param_leaves().items():
            try:
                grid[name] = leaf.grid()
            except ValueError as err:
                raise ConfigError(f"{self.source}: {name}: the grid sampler needs discrete leaves: {err}") from None
            total *= len(grid[name])
        if total > max_points:
            raise ConfigError(f"{self.source}: the grid has {total:,} points (more than {max_points:,}); "
                              "use another sampler or fewer choices")
        return grid


def _assign(src: Source, stages: list[dict], key: str, leaf: Leaf, idx: Iterable[int],
            name_key: str | None = None) -> None:
    """Set ``stages[i][key]`` (a dotted key) for every ``i`` in ``idx`` from ``leaf``."""
    idx = list(idx)
    if not idx:
        return
    name_key = name_key or key
    if isinstance(leaf, Dist) and leaf.per_stage:
        values = [pick(src, f"stages.{i}.{name_key}", leaf, [f"stages.{i}.{key}"]) for i in idx]
    else:
        v = pick(src, f"stages.{name_key}", leaf, [f"stages.{i}.{key}" for i in idx])
        values = [v] * len(idx)
    for i, v in zip(idx, values):
        node = stages[i]
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = v


_UNFUSED = "unfused"


def _unfused(leaf: Leaf) -> Leaf | None:
    """``decoder_depth``'s leaf for a stage whose skip does not fuse (concat): without 0."""
    return leaf.excluding(0) if isinstance(leaf, Dist) else leaf


def _decoder_depth(src: Source, stages: list[dict], leaf: Leaf, idx: Iterable[int]) -> None:
    """Conditional ``decoder_depth``: 0 (no decoder block) only where the stage's skip fuses
    to the stage width (:func:`nasseg.skips.fuses`), so a space cannot express the invalid
    concat + 0. Stages with a non-fusing skip take the leaf without 0, under its own
    parameter name (``stages.decoder_depth.unfused``): Optuna keeps one distribution per
    name. (A space whose decoder_depth is fixed at 0 with a concat choice is refused when
    it is parsed.)"""
    fusing = [i for i in idx if fuses(stages[i].get("skip", {}).get("type", "concat"))]
    rest = [i for i in idx if i not in fusing]
    _assign(src, stages, "decoder_depth", leaf, fusing)
    unfused = _unfused(leaf)
    if unfused is None:
        unfused = leaf  # only 0 is left: the network is invalid (refused at parse time)
    _assign(src, stages, "decoder_depth", unfused, rest,
            name_key="decoder_depth" if unfused is leaf else f"decoder_depth.{_UNFUSED}")


def _component(src: Source, stages: list[dict], comp: Component, idx: Iterable[int]) -> None:
    idx = list(idx)
    if not idx:
        return
    kind, leaf = comp.kind, comp.type
    if isinstance(leaf, Dist) and leaf.per_stage:
        types = {i: pick(src, f"stages.{i}.{kind}.type", leaf, [f"stages.{i}.{kind}.type"]) for i in idx}
    else:
        t = pick(src, f"stages.{kind}.type", leaf, [f"stages.{i}.{kind}.type" for i in idx])
        types = dict.fromkeys(idx, t)
    for i in idx:
        stages[i][kind] = None if types[i] == "none" else {"type": types[i]}
    for key, leaf in comp.generic.items():
        who = [i for i in idx if key in comp.fields(types[i])
               and key not in comp.specific.get(types[i], {})]
        _assign(src, stages, f"{kind}.{key}", leaf, who)
    for t, params in comp.specific.items():
        who = [i for i in idx if types[i] == t]
        for key, leaf in params.items():
            _assign(src, stages, f"{kind}.{key}", leaf, who, name_key=f"{kind}.{t}.{key}")


def _diff(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in _diff(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}.{i}")]
    return [] if a == b else [(path, a, b)]

