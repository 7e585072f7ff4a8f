"""The typed architecture config: YAML -> ``ArchConfig`` -> ``build_model``.

Block, skip and skip-attention params are tagged unions over the registries
(``type`` picks the class), so a typo or an unknown key fails when the file is
loaded, with the field's path, never an hour into a study.

Example (YAML)::

    spatial_dims: 2
    in_channels: 3
    out_channels: 1
    stem: {kernel_size: 3}
    stages:
      - {width: 16, block: {type: cmunext, kernel_size: 3}, decoder_depth: 0, skip: {type: skip_fusion}}
      - {width: 32, block: {type: cmunext, kernel_size: 7}}
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from nasseg.blocks import BLOCKS, KernelSize
from nasseg.configio import Strict
from nasseg.errors import ConfigError
from nasseg.layers import ACTS, NORMS
from nasseg.skips import ATTENTIONS, SKIPS, UpMode, fuses


def _tagged(registry) -> Any:
    types = registry.params_types()
    if len(types) == 1:
        return types[0]
    return Annotated[Union[types], Field(discriminator="type")]  # noqa: UP007


BlockParams = _tagged(BLOCKS)
SkipParams = _tagged(SKIPS)
AttentionParams = _tagged(ATTENTIONS)
Norm = Literal[NORMS]  # type: ignore[valid-type]
Activation = Literal[ACTS]  # type: ignore[valid-type]


DownMode = Literal["maxpool", "strided_conv", "patch_merging"]
STAGE_EXTRAS = ("down", "up", "extra")
"""Stage fields added after arch ids were first stored: left out of the id while unset."""


class StemConfig(Strict):
    """A conv + norm + act at full resolution before the first stage (CMUNeXt's stem).

    Attributes:
        kernel_size: the conv's kernel (one size, or one per spatial axis).
    """

    kernel_size: KernelSize = 3


class ExtraBlocks(Strict):
    """``depth`` blocks of one type at a stage's width (see ``StageConfig.extra``).

    Attributes:
        block: the block type and its parameters.
        depth: how many.
    """

    block: BlockParams
    depth: PositiveInt = 1


class StageConfig(Strict):
    """One resolution level: encoder blocks, and the decoder's skip and blocks at that level.

    ``skip``, ``skip_attention`` and ``decoder_depth`` are unused at the deepest stage.

    Attributes:
        width: channels at this level.
        depth: encoder blocks at this level.
        block: the block type and its parameters (``type`` picks it).
        decoder_depth: decoder blocks at this level (0 needs a skip that fuses to the width).
        skip: how the encoder's features join the decoder at this level.
        skip_attention: an attention applied to the skip features (``None`` = none).
    """

    width: PositiveInt
    depth: PositiveInt = 1
    block: BlockParams = Field(default_factory=lambda: BLOCKS.get("conv").Params())
    decoder_depth: NonNegativeInt = 1
    skip: SkipParams = Field(default_factory=lambda: SKIPS.get("concat").Params())
    skip_attention: AttentionParams | None = None
    down: DownMode | None = None
    """How the network enters this stage (default: the network's ``down``)."""
    up: UpMode | None = None
    """How this stage's output is upsampled for the level above (default: the network's ``up``)."""
    extra: ExtraBlocks | None = None
    """Blocks of another type at this resolution, before the encoder's blocks and after the
    decoder's (GLIMS' Swin layers beside its 192-channel DMSF/DMSU stages)."""


class ArchConfig(Strict):
    """A U-shaped network. ``out_channels`` 1 means binary (sigmoid), K > 1 means K classes
    including background (softmax).

    Attributes:
        spatial_dims: 2 (images) or 3 (volumes).
        in_channels: input image channels.
        out_channels: 1 (binary) or the number of classes including background.
        stem: a full-resolution conv before the first stage (``None`` = none).
        stages: the resolution levels, shallowest first; each one halves the size.
        down: how the network enters a deeper stage (a stage's ``down`` overrides it).
        up: how a stage's output is upsampled for the level above (a stage's ``up`` overrides it).
        norm: normalisation layer of every block.
        act: activation of every block.
        deep_supervision: also output the decoder's lower-resolution predictions (trained
            with ``TrainConfig.ds_weights``).
    """

    name: str | None = Field(default=None, description="a label; not part of arch_id")
    spatial_dims: Literal[2, 3]
    in_channels: PositiveInt
    out_channels: PositiveInt
    stem: StemConfig | None = None
    stages: list[StageConfig] = Field(min_length=2)
    down: DownMode = "maxpool"
    up: UpMode = "interp_conv"
    norm: Norm = "batch"
    act: Activation = "relu"
    deep_supervision: bool = False

    @model_validator(mode="after")
    def _check(self) -> ArchConfig:
        for i, stage in enumerate(self.stages):
            for where, params in (("block", stage.block), ("skip_attention", stage.skip_attention),
                                  ("extra.block", stage.extra.block if stage.extra else None)):
                k = getattr(params, "kernel_size", None)
                if isinstance(k, tuple) and len(k) != self.spatial_dims:
                    raise ValueError(
                        f"stages.{i}.{where}.kernel_size: {list(k)} has {len(k)} entries but "
                        f"spatial_dims is {self.spatial_dims}"
                    )
            last = i == len(self.stages) - 1
            if i == 0 and (stage.down or stage.up):
                raise ValueError(f"stages.0.{'down' if stage.down else 'up'}: the first stage is neither "
                                 "entered by downsampling nor upsampled; set it on a deeper stage")
            if not last and stage.decoder_depth == 0 and not fuses(stage.skip.type):
                ok = [t for t in SKIPS.names() if fuses(t)]
                raise ValueError(
                    f"stages.{i}.decoder_depth: 0 needs a skip that fuses to the stage width "
                    f"({' or '.join(ok)}), not '{stage.skip.type}'"
                )
        if self.stem is not None and isinstance(self.stem.kernel_size, tuple) \
                and len(self.stem.kernel_size) != self.spatial_dims:
            raise ValueError(f"stem.kernel_size: {list(self.stem.kernel_size)} has "
                             f"{len(self.stem.kernel_size)} entries but spatial_dims is {self.spatial_dims}")
        return self

    def canonical(self) -> dict[str, Any]:
        """The config with every default filled in and the label dropped: what arch_id hashes.

        Stage fields added later (``STAGE_EXTRAS``) are left out while unset, so the ids of
        networks stored before they existed do not change.
        """
        d = self.model_dump(mode="json", exclude={"name"})
        for stage in d["stages"]:
            for key in STAGE_EXTRAS:
                if stage.get(key) is None:
                    stage.pop(key, None)
        return d

    def min_input_multiple(self) -> int:
        """Every spatial input size must be a multiple of this (:func:`size_multiple`)."""
        return size_multiple(len(self.stages))


def arch_id(config: ArchConfig) -> str:
    """A stable 12-hex-digit id: sha256 of the canonical JSON (sorted keys, defaults filled).

    Two configs that build the same network have the same id, however they were written.
    """
    text = json.dumps(config.canonical(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_input_shape(config: ArchConfig, shape: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Validate ``(B, C, *spatial)`` against the config; return it as a tuple of ints."""
    shape = tuple(int(n) for n in shape)
    want = 2 + config.spatial_dims
    if len(shape) != want:
        raise ConfigError(f"input shape {list(shape)} has {len(shape)} dims; a {config.spatial_dims}D "
                         f"network takes {want} (batch, channels, {config.spatial_dims} spatial)")
    if shape[1] != config.in_channels:
        raise ConfigError(f"input shape {list(shape)} has {shape[1]} channels; the network takes "
                         f"in_channels={config.in_channels}")
    check_divisible(shape[2:], len(config.stages), "input size")
    return shape


def size_multiple(n_stages: int) -> int:
    """Every spatial input size of a U-shaped network with ``n_stages`` stages must be a
    multiple of ``2 ** (n_stages - 1)`` (one halving between stages)."""
    return 2 ** (n_stages - 1)


def check_divisible(sizes: Sequence[int], n_stages: int, what: str, *, whose: str = "", how: str = "use") -> None:
    """The one check (and message) of the size rule :func:`size_multiple`.

    Args:
        sizes: the spatial sizes.
        n_stages: stages of the (deepest) network they are for.
        what: what the sizes are, as the message starts (``"data.patch_size"``).
        whose: names the networks before the stage count (``"the space's deepest networks: "``).
        how: what to do, completed by " a multiple of M (e.g. [...])".

    Raises:
        ConfigError: a size is not a positive multiple.

    Example:
        >>> check_divisible([40, 48], 5, "constraints.input_size")
        Traceback (most recent call last):
        ...
        nasseg.errors.ConfigError: constraints.input_size [40, 48] is not divisible by 2^(stages-1) = 16 (5 stages); use a multiple of 16 (e.g. [32, 48])
    """
    m = size_multiple(n_stages)
    sizes = [int(n) for n in sizes]
    if all(n > 0 and n % m == 0 for n in sizes):
        return
    near = [max(m, round(n / m) * m) for n in sizes]
    raise ConfigError(f"{what} {sizes} is not divisible by 2^(stages-1) = {m} ({whose}{n_stages} stages); "
                      f"{how} a multiple of {m} (e.g. {near})")
