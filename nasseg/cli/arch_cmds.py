"""``nasseg presets`` and ``nasseg profile``: the architecture zoo and its costs."""
from __future__ import annotations

import argparse
import json

from rich.table import Table

from nasseg.cli.console import make_console
from nasseg.device import resolve_device, resolve_precision
from nasseg.errors import ConfigError
from nasseg.store.objectives import OBJECTIVES


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,256,256"`` -> ``(1, 3, 256, 256)``; a clear error otherwise."""
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise ConfigError(f"--input '{text}': expected comma-separated integers like 1,3,256,256") from None
    if any(n <= 0 for n in shape):
        raise ConfigError(f"--input '{text}': every size must be positive")
    return shape


def _default_shape(cfg) -> tuple[int, ...]:
    side = 256 if cfg.spatial_dims == 2 else 96
    return (1, cfg.in_channels, *([side] * cfg.spatial_dims))


def cmd_presets(args: argparse.Namespace) -> int:
    from nasseg.arch import arch_id, load_arch, preset_names  # lazy: CLI startup (torch)
    from nasseg.cost import profile  # lazy: CLI startup (torch)

    unknown = [n for n in args.names if n not in preset_names()]
    if unknown:
        load_arch(unknown[0])  # raises the "did you mean" error
    rows = []
    for name in args.names or preset_names():
        cfg = load_arch(name)
        shape = _default_shape(cfg)
        cost = profile(cfg, shape, latency=False)
        rows.append({"preset": name, "id": arch_id(cfg), "dims": cfg.spatial_dims,
                     "input": list(shape), "params": cost.params, "macs": cost.macs})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="nasseg presets (MACs counted on the meta device, as ptflops counts them)")
    objs = [OBJECTIVES["params"], OBJECTIVES["macs"]]  # columns, units and numbers as the registry writes them
    for col in ("preset", "id", "input"):
        table.add_column(col, justify="left")
    for o in objs:
        table.add_column(o.column, justify="right")
    for r in rows:
        table.add_row(r["preset"], r["id"], "x".join(map(str, r["input"])), *(o.text(o.value(r)) for o in objs))
    make_console().print(table)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from nasseg.arch import load_arch  # lazy: CLI startup (torch)
    from nasseg.cost import profile  # lazy: CLI startup (torch)

    cfg = load_arch(args.arch)
    shape = parse_shape(args.input) if args.input else _default_shape(cfg)
    device = resolve_device(args.device, "--device")  # decided here once; profile measures where it is told
    cost = profile(cfg, shape, device=str(device), precision=resolve_precision(device),
                   latency=args.latency and not args.no_latency, cache=not args.no_cache, warmup=args.warmup,
                   repeats=args.repeats, threads=args.threads or None, channels_last=not args.contiguous,
                   counter=args.counter)
    d = cost.to_dict() | {"name": cfg.name or str(args.arch), "cached": cost.cached}
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    table = Table(title=f"{d['name']} at {'x'.join(map(str, shape))} ({cost.arch_id})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("how")
    table.add_row("params", f"{cost.params:,}", "trainable parameters")
    how = "meta device, " if args.counter == "meta" else ""
    table.add_row("MACs", f"{cost.macs:,}", f"{how}as ptflops (pytorch backend)")
    table.add_row("FLOPs", f"{cost.flops:,}", f"{how}as fvcore")
    lat = "-" if cost.latency_ms is None else f"{cost.latency_ms:.2f} ms"
    threads = f", {args.threads} thread(s)" if args.threads and args.device == "cpu" else ""
    table.add_row("latency", lat, "not measured (add --latency)" if cost.latency_ms is None else
                  f"median forward on {cost.device}{threads}, "
                  f"{'contiguous' if args.contiguous else 'channels-last'}")
    table.add_row("memory", f"{cost.memory_mb:,.1f} MB",
                  "CUDA allocator peak" if cost.memory_kind == "cuda_peak"
                  else "training-step estimate from feature maps")
    make_console().print(table)
    if cost.cached:
        make_console().print("[dim](from the cost cache)[/dim]")
    return 0


def register(sub) -> None:
    p = sub.add_parser("presets", help="list the preset architectures with params and MACs "
                                        "(counted on the meta device: no network runs)")
    p.add_argument("names", nargs="*", help="only these presets (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("profile", help="params, MACs, FLOPs and training memory of a network "
                                        "(no network runs), and latency with --latency")
    p.add_argument("arch", help="a preset name or an architecture YAML")
    p.add_argument("--input", help="input shape B,C,H,W[,D] (default 1,C,256,256 / 1,C,96,96,96)")
    p.add_argument("--device", default="cpu", help="device for latency/memory: cpu or cuda")
    p.add_argument("--latency", action="store_true",
                   help="also measure latency (runs the network; the counts never do)")
    p.add_argument("--no-latency", action="store_true", help=argparse.SUPPRESS)  # the old default's opt-out
    p.add_argument("--warmup", type=int, default=3, help="untimed forward passes before timing")
    p.add_argument("--repeats", type=int, default=10, help="timed forward passes (median reported)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads while timing (default 1; 0 keeps the process's setting)")
    p.add_argument("--contiguous", action="store_true",
                   help="time contiguous tensors instead of channels-last (training's default)")
    p.add_argument("--counter", choices=["meta", "reference"], default="meta",
                   help="meta: count on the meta device (default); reference: run ptflops and fvcore")
    p.add_argument("--no-cache", action="store_true", help="count again, ignoring the cost cache")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_profile)
