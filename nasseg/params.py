"""Parameter types shared by blocks and skips (below both): a component's typed params
and an odd kernel size. No torch here, so configs validate without it.

Example:
    >>> from typing import Literal
    >>> class MyParams(Params):
    ...     type: Literal["mine"] = "mine"
    ...     kernel_size: KernelSize = 3
    >>> MyParams(kernel_size=(3, 5)).kernel_size
    (3, 5)
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from nasseg.configio import check_bools

__all__ = ["KernelSize", "Params"]


def _check_kernel(k: int | tuple[int, ...]) -> int | tuple[int, ...]:
    sizes = (k,) if isinstance(k, int) else k
    if not sizes:
        raise ValueError("kernel size tuple is empty")
    for n in sizes:
        if n < 1 or n % 2 == 0:
            raise ValueError(f"kernel size must be odd and positive, got {n}")
    return k


KernelSize = Annotated[int | tuple[int, ...], AfterValidator(_check_kernel)]
"""An odd kernel size: one int for every axis, or one per spatial axis."""


class Params(BaseModel):
    """Typed hyperparameters of one registered component; ``type`` is its registered name."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str

    @model_validator(mode="before")
    @classmethod
    def _no_bool_coercion(cls, raw: Any) -> Any:
        return check_bools(cls, raw)  # `kernel_size: true` would be a kernel of 1
