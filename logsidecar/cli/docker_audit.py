"""`logsidecar docker audit` (volumes that leak, writes into volumes at build time) and
`logsidecar docker check-image`; registered on the `docker` group by cli/docker.py."""

from __future__ import annotations

import json
import sys

import click

from logsidecar.cli.docker_client import EnvironmentProblem, client_of
from logsidecar.cli.params import output_format_option


def _human_size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _human_age(age_s: float | None) -> str:
    if age_s is None:
        return "?"
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if age_s >= span:
            return f"{age_s / span:.0f}{unit}"
    return f"{age_s:.0f}s"


@click.command("audit")
@output_format_option(json_flag=True)
@click.option("--prune", is_flag=True, help="Remove the unreferenced volumes listed (after confirmation).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@click.option(
    "--include-named",
    is_flag=True,
    help="With --prune, remove named volumes that still hold data too (kept by default).",
)
@click.option(
    "--prune-dirs",
    is_flag=True,
    help="Also remove leaked bind directories (their container is gone) that are empty; never one that holds data.",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only volumes matching the engine's volume filter (name=..., label=...); repeatable.",
)
@click.pass_context
def audit(
    ctx: click.Context,
    output_format: str,
    prune: bool,
    yes: bool,
    include_named: bool,
    prune_dirs: bool,
    filters: tuple[str, ...],
) -> None:
    """List volumes no container references, anonymous leftovers, and engine-created bind directories.

    \b
    Examples:
      logsidecar docker audit
      logsidecar docker audit -o json | jq '.unused_volumes[].name'
      logsidecar docker audit --prune --yes --filter label=project=demo
    """
    as_json = output_format == "json"
    from logsidecar.containers import audit as audit_mod
    from logsidecar.containers import audit_seen

    client = client_of(ctx)
    engine_filters: dict[str, list[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--filter")
        engine_filters.setdefault(key, []).append(value)
    volumes = audit_mod.unused_volumes(client, filters=engine_filters)
    all_dirs = audit_mod.engine_created_bind_dirs(client)
    dirs = [d for d in all_dirs if audit_mod.bind_dir_matches(d, engine_filters)]
    leaked = [
        d
        for d in audit_seen.remember_and_find_leaked(
            audit_seen.seen_file(),
            [(d.path, d.container, d.container_id) for d in all_dirs],
            audit_mod.live_container_ids(client),
        )
        if audit_mod.bind_dir_matches(d, engine_filters)
    ]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "unused_volumes": [v.to_dict() for v in volumes],
                    "engine_created_bind_dirs": [
                        {k: v for k, v in d.to_dict().items() if k != "labels"} for d in dirs
                    ],
                    "leaked_bind_dirs": [d.to_dict() for d in leaked],
                },
                indent=2,
            )
        )
    else:
        click.echo(f"{len(volumes)} volume(s) referenced by no container:")
        for v in volumes:
            kind = "anonymous" if v.anonymous else "named"
            whose = f"  (logsidecar checkpoints of the sidecar of {v.state_of})" if v.state_of else ""
            click.echo(
                f"  {v.name:<64}  {kind:<9}  {_human_size(v.size_bytes):>9}  age {_human_age(v.age_s)}{whose}"
            )
        click.echo(
            f"{len(dirs)} bind-mount director(y/ies) probably created by the engine (empty, root-owned):"
        )
        for d in dirs:
            click.echo(f"  {d.path}  (container {d.container})")
        click.echo(f"{len(leaked)} leaked bind director(y/ies): created by the engine, container gone:")
        for ld in leaked:
            click.echo(f"  {ld.path}  (container {ld.container} {ld.container_id[:12]}, gone; {ld.state()})")
    if prune_dirs:
        for ld in leaked:
            removed_dir, why_not = audit_mod.remove_leaked_dir(ld)
            if removed_dir:
                click.echo(f"removed directory {ld.path}", err=as_json)
            elif why_not:
                click.echo(f"kept directory {ld.path}: {why_not}", err=True)
    if not prune or not volumes:
        return
    names, kept_named = audit_mod.prune_plan(volumes, include_named)
    for name, why in kept_named:
        click.echo(f"kept {name}: {why}", err=True)
    if not names:
        return
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("--prune needs confirmation: run it on a terminal or add --yes")
        click.confirm(f"Remove these {len(names)} volume(s)? " + ", ".join(names), abort=True)
    removed, kept = audit_mod.prune_volumes(client, names)
    for name in removed:
        click.echo(f"removed {name}", err=as_json)
    for name, why in kept:
        click.echo(f"kept {name}: {why}", err=True)


@click.command("check-image")
@click.argument("image")
@output_format_option(json_flag=True)
@click.pass_context
def check_image(ctx: click.Context, image: str, output_format: str) -> None:
    """Report IMAGE's VOLUMEs and build steps that wrote into them after they were declared.

    Exit 1 when a step certainly writes into a volume; steps whose writes the history cannot show are
    listed as "cannot tell" (exit 0 if nothing else); exit 2 when the image cannot be inspected.

    \b
    Examples:
      logsidecar docker check-image my/apache:latest
      logsidecar docker check-image -o json my/apache:latest
    """
    as_json = output_format == "json"
    from logsidecar.containers import image_check
    from logsidecar.containers.engine import EngineError

    client = client_of(ctx)
    try:
        report = image_check.check_image(client, image)
    except EngineError as exc:
        raise EnvironmentProblem(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - the SDK raises many kinds; one line, exit 2
        raise EnvironmentProblem(f"cannot inspect image {image}: {exc}") from exc
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(f"{image}: VOLUME " + (", ".join(report.volumes) if report.volumes else "(none)"))
        for f in report.findings:
            why = (
                "its writes are discarded at build time"
                if f.kind == "run"
                else "its files are hidden whenever a volume is mounted there"
            )
            click.echo(
                f"  step {f.step} writes {f.detail} into {f.volume} after VOLUME declared it: {why}\n"
                f"    {f.instruction}"
            )
        for f in report.cannot_tell:
            click.echo(
                f"  step {f.step}: cannot tell whether it writes into {f.volume} ({f.detail})\n    {f.instruction}"
            )
        if not report.findings:
            click.echo("  no build step certainly writes into a declared volume after its VOLUME instruction")
    if report.findings:
        sys.exit(1)
