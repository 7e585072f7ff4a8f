"""Where a command may write: outputs never destroy inputs or earlier results.

Every command that writes files a user names (``predict --out``, ``evaluate --out``,
``export -o``, ``train --run-dir``) asks this module first, before anything is computed or
created:

- a target that *is* an input (the same file, after symlinks are resolved) is refused,
  even with ``--overwrite``;
- a target that already exists (a mask, a ground-truth file, an earlier run's checkpoint,
  a per-case table) is refused unless the user passed ``--overwrite``;
- an output folder inside an input folder is refused unless ``--overwrite`` (the next run
  would read the outputs as inputs);
- two outputs that would land on one file (``case.png`` and ``case.jpg`` both give
  ``case.png``) are refused, naming both inputs;
- a folder where a file is needed, or the reverse, is refused naming the path.

Each refusal is one :class:`~nasseg.errors.ConfigError` line (exit 2) naming the path.

Example:
    >>> check_targets([Path("a.png")], inputs=[Path("a.png")], flag="--out")
    Traceback (most recent call last):
    nasseg.errors.ConfigError: --out a.png: is an input file (a.png); it is never overwritten (choose another --out)
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from nasseg.errors import ConfigError

__all__ = ["check_file", "check_folder", "check_targets"]


def _real(p: Path) -> Path:
    return Path(p).expanduser().resolve()


def check_folder(out: str | Path, flag: str, *, inside: Iterable[Path] = (), overwrite: bool = False) -> Path:
    """``out`` as an output folder: not a file, and not inside one of the ``inside`` folders
    (input folders) unless ``overwrite``.

    Raises:
        ConfigError: naming ``flag``, the path and the fix.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: is a file; a folder is needed here")
    if not overwrite:
        real = _real(path)
        for folder in inside:
            f = _real(folder)
            if real == f or f in real.parents:
                raise ConfigError(f"{flag} {path}: is inside the input folder {folder}; choose another folder "
                                  f"(or pass --overwrite to write there anyway)")
    return path


def check_file(out: str | Path, flag: str, *, inputs: Sequence[Path] = (), overwrite: bool = False) -> Path:
    """``out`` as one output file: not a folder, never an input, not an existing file
    unless ``overwrite``.

    Raises:
        ConfigError: naming ``flag``, the path and the fix.
    """
    path = Path(out)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; name the file to write")
    check_targets([path], inputs=inputs, flag=flag, overwrite=overwrite)
    return path


def check_targets(targets: Sequence[Path], *, inputs: Sequence[Path] = (), flag: str,
                  overwrite: bool = False, sources: Sequence[Path] | None = None) -> None:
    """Refuse to write ``targets`` when one is an input, already exists (unless
    ``overwrite``) or two coincide.

    Args:
        targets: the files about to be written.
        inputs: files the command reads (never overwritten, whatever ``overwrite`` says).
        flag: the option that named the destination (for the message).
        overwrite: the user allowed replacing existing outputs.
        sources: per target, the input it is made from (names both inputs of a collision).

    Raises:
        ConfigError: one line naming the path.
    """
    real_inputs = {_real(p): p for p in inputs}
    seen: dict[Path, int] = {}
    for i, t in enumerate(targets):
        real = _real(t)
        if real in real_inputs:
            raise ConfigError(f"{flag} {t}: is an input file ({real_inputs.get(real, t)}); it is never "
                              f"overwritten (choose another {flag})")
        if real in seen:
            if sources is not None:
                raise ConfigError(f"{sources[seen[real]]} and {sources[i].name}: both would be written to {t}; "
                                  f"rename one of them (inputs must have distinct names before the extension)")
            raise ConfigError(f"{flag} {t}: two outputs would be written to this one file")
        seen[real] = i
        if t.is_dir():
            raise ConfigError(f"{flag} {t}: is a folder; a file is needed here")
        if t.is_symlink():
            raise ConfigError(f"{flag} {t}: is a symbolic link to {real}; writing would change that file "
                              f"(choose another {flag})")
        if t.exists() and not overwrite:
            raise ConfigError(f"{flag} {t}: already exists; choose another {flag} (or pass --overwrite to "
                              f"replace it)")
