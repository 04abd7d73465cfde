"""`logsidecar docker ...`: attach to a container's log files, start a sidecar, audit volumes, check images.

Exit codes, the same for every subcommand: 0 ok; 1 a finding (check-image found a write into a
volume, the container's logs are on no volume, a link leads out of the volume); 2 a usage or
environment error (a wrong option, the engine unreachable, no such container or image, a name taken).
Every error is one message naming the container, path or image, and what to do; never a traceback.
"""

from __future__ import annotations

import json
import os
import posixpath
import sys

import click

from logsidecar.cli.params import output_format_option

# The Docker SDK (and requests under it) costs ~140 ms and several MiB to import: only the docker
# subcommands pay for it, so the containers package is imported inside them.

DEFAULT_CONTAINER_GLOB = "/var/log/apache2/*.log"
DEFAULT_SIDECAR_IMAGE = (
    "logsidecar/logsidecar:local"  # containers.sidecar.DEFAULT_IMAGE, kept in sync by a test
)


@click.group("docker")
@click.option(
    "--host",
    "docker_host",
    envvar="DOCKER_HOST",
    help="Engine address (default: DOCKER_HOST or the local socket).",
)
@click.pass_context
def command(ctx: click.Context, docker_host: str | None) -> None:
    """Docker-aware commands: attach, sidecar, audit, check-image.

    \b
    Examples:
      logsidecar docker attach web
      logsidecar docker attach --engine-logs web
      logsidecar docker sidecar web --rm --output otlp
      logsidecar docker audit -o json
    """
    ctx.obj = {"docker_host": docker_host}


class EnvironmentProblem(click.ClickException):
    """The engine, a container, an image or a name is not as the command needs it: exit code 2."""

    exit_code = 2


class Finding(click.ClickException):
    """What the command was asked to check is wrong (exit code 1)."""

    exit_code = 1


def _client(ctx: click.Context):
    from logsidecar.containers.engine import EngineError, connect

    try:
        return connect(ctx.obj.get("docker_host"))
    except EngineError as exc:
        raise EnvironmentProblem(str(exc)) from exc


def _container(client, name: str):
    from logsidecar.containers.engine import EngineError, get_container

    try:
        return get_container(client, name)
    except EngineError as exc:
        raise EnvironmentProblem(str(exc)) from exc


@command.command("attach", context_settings={"ignore_unknown_options": True})
@click.argument("container")
@click.option(
    "--path",
    "container_glob",
    default=DEFAULT_CONTAINER_GLOB,
    show_default=True,
    help="Glob of the log files as the container sees them.",
)
@click.option(
    "--label", "labels", multiple=True, help="Container label to add as container.label.<key> ('*' for all)."
)
@click.option(
    "--engine-logs",
    is_flag=True,
    help="Follow the container's stdout/stderr through the engine's log API instead of log files "
    "(offered when its logs go to stdout). Resumes after the last delivered line's timestamp.",
)
@click.argument("tail_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def attach(
    ctx: click.Context,
    container: str,
    container_glob: str,
    labels: tuple[str, ...],
    engine_logs: bool,
    tail_args: tuple[str, ...],
) -> None:
    """Tail CONTAINER's log files from the host, with its metadata as resource attributes.

    Extra options after the container name are passed to `logsidecar tail` (e.g. --output otlp).

    A container that logs to its stdout (the official httpd image) has no files to tail: with
    --engine-logs (offered on a terminal) its stdout/stderr are followed through the engine's log API,
    as `docker logs -f` reads them, with the engine's timestamp of every line. The timestamp of the
    last delivered line is kept in the state directory (engine-logs/<container id>.json), and a restart
    resumes after it. What that cannot guarantee: the engine keeps only what its log driver keeps
    (json-file's max-size/max-file rotation drops lines written while nothing read them; a driver the
    engine cannot read back gives nothing); lines are found by the engine's clock (a clock stepped back
    can repeat or skip lines); stdout and stderr come interleaved, which stream a line came from is not
    kept; a line over 16 KiB arrives as several. The run ends when the container stops.

    \b
    Examples:
      logsidecar docker attach web
      logsidecar docker attach web --path '/usr/local/apache2/logs/*_log' --output otlp
      logsidecar docker attach --engine-logs web --format combined
    """
    from logsidecar.containers.metadata import container_resource, resource_args
    from logsidecar.containers.mounts import (
        NotOnMount,
        escaping_log_dir,
        resolve_log_dir,
        stdout_logging_advice,
        stdout_symlinks,
    )

    client = _client(ctx)
    target = _container(client, container)
    if engine_logs:
        _follow_engine_logs(client, target, labels, tail_args)
        return
    container_dir, pattern = posixpath.split(container_glob)
    try:
        location = resolve_log_dir(target.attrs, container_dir)
    except NotOnMount as exc:
        if _offer_engine_logs(target.name, str(exc)):
            _follow_engine_logs(client, target, labels, tail_args)
            return
        raise Finding(f"{exc} {_ENGINE_LOGS_HINT.format(name=target.name)}") from exc
    escaped = escaping_log_dir(location)
    if escaped is not None:
        raise Finding(
            f"{container_dir} of {target.name} is {location.host_dir} on the host, and a symlink inside the "
            f"{location.mount_type} leads it to {escaped}, outside the {location.mount_type}: refusing to "
            "follow it (the container can write any link there)"
        )
    redirected = stdout_symlinks(location.host_dir)
    if redirected:
        advice = stdout_logging_advice(target.name, container_dir, redirected)
        if _offer_engine_logs(target.name, advice):
            _follow_engine_logs(client, target, labels, tail_args)
            return
        click.echo(f"logsidecar: {advice} {_ENGINE_LOGS_HINT.format(name=target.name)}", err=True)
    from logsidecar.containers.metadata import volume_writers, writers_warning

    where = f"{location.mount_type} {location.volume_name or location.mount_source}"
    warning = writers_warning(
        target.name, volume_writers(client, location.volume_name or location.mount_source), where
    )
    if warning:
        click.echo(f"logsidecar: warning: {warning}", err=True)
    host_glob = os.path.join(location.host_dir, pattern)
    resource = container_resource(target.attrs, labels)
    args = resource_args(resource)
    args += _tail_time_zone_args(client, target, tail_args)
    click.echo(
        f"logsidecar: attaching to {target.name} ({target.short_id}): {container_glob} is {host_glob} "
        f"on the host ({location.mount_type}{' ' + location.volume_name if location.volume_name and location.mount_type == 'volume' else ''})",
        err=True,
    )
    from logsidecar.cli.tail import command as tail_command

    # The tailer's file-opening policy takes the fixed part of host_glob (the log directory on the
    # host) as its base: with the default --follow-symlinks within, a link the container planted there
    # (access.log -> /etc/shadow) is refused, never read.
    # Records name the file as the container sees it (log.file.path), and where it was read on this
    # host (logsidecar.host.path): /var/lib/docker/volumes/<64 hex>/_data means nothing to a reader.
    tail_command.main(
        args=[*args, *tail_args, host_glob],
        prog_name="logsidecar tail",
        standalone_mode=True,
        obj={"path_map": ((location.host_dir, container_dir),)},
    )


_ENGINE_LOGS_HINT = (
    "To follow its stdout/stderr through the engine's log API instead: "
    "logsidecar docker attach --engine-logs {name}"
)


def _offer_engine_logs(name: str, why: str) -> bool:
    """On a terminal, say why there are no files to tail and offer the engine's log stream instead."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    click.echo(f"logsidecar: {why}", err=True)
    return click.confirm(
        f"Follow the stdout/stderr of {name} through the engine's log API instead?", default=True, err=True
    )


def _tail_time_zone_args(client, target, tail_args: tuple[str, ...]) -> list[str]:
    zone_given = any(a == "--timezone" or a.startswith("--timezone=") for a in tail_args)
    if zone_given or "LOGSIDECAR_TIMEZONE" in os.environ:
        return []
    from logsidecar.containers.timezone import container_timezone

    zone, source = container_timezone(client, target.attrs)
    click.echo(f"logsidecar: error-log times of {target.name} are read in {zone} ({source})", err=True)
    return ["--timezone", zone]


def _follow_engine_logs(client, target, labels: tuple[str, ...], tail_args: tuple[str, ...]) -> None:
    """Run `logsidecar tail -` with the engine's log stream of `target` as its source."""
    from pathlib import Path

    from logsidecar.containers.engine_logs import EngineLogSource, load_position, position_file
    from logsidecar.containers.metadata import container_resource, resource_args

    driver = (target.attrs.get("HostConfig") or {}).get("LogConfig", {}).get("Type", "")
    if driver == "none":
        raise Finding(
            f"{target.name} runs with the log driver 'none': the engine keeps nothing to follow. "
            "Recreate it with the default (json-file) or local driver."
        )
    if _tail_paths(tail_args):
        raise click.UsageError("--engine-logs follows the container's stdout/stderr: give no PATH_OR_GLOB")
    args = resource_args(container_resource(target.attrs, labels))
    args += _tail_time_zone_args(client, target, tail_args)

    def source(plan):
        state = plan.settings.state_dir
        state_dir = None if state is None or state.lower() == "none" else Path(state)
        return EngineLogSource(target, plan.tail_options, state_dir)

    from logsidecar.cli.tail import command as tail_command
    from logsidecar.settings.sources import default_state_dir

    parsed = tail_command.make_context("tail", [*tail_args, "-"], resilient_parsing=True)
    state = (
        parsed.params.get("state_dir")
        or os.environ.get("LOGSIDECAR_STATE_DIR")
        or str(default_state_dir(os.environ))
    )  # (a --config file's state_dir is not looked at for this message)
    saved = position_file(Path(state), target.id) if state.lower() != "none" else None
    resume = load_position(saved) if saved is not None else None
    click.echo(
        f"logsidecar: following the stdout/stderr of {target.name} ({target.short_id}) through the engine's "
        f"log API (log driver {driver or 'unknown'}), "
        + (
            "from where the last run stopped"
            if resume is not None and resume.timestamp_ns
            else "from its first line the engine kept"
        ),
        err=True,
    )
    tail_command.main(
        args=[*args, *tail_args, "-"],
        prog_name="logsidecar tail",
        standalone_mode=True,
        obj={"source_factory": source},
    )


@command.command("sidecar", context_settings={"ignore_unknown_options": True})
@click.argument("container")
@click.option(
    "--image", default=DEFAULT_SIDECAR_IMAGE, show_default=True, help="The logsidecar image to run."
)
@click.option(
    "--pull", is_flag=True, help="Pull --image when the engine does not have it (never done unasked)."
)
@click.option(
    "--rm",
    "auto_remove",
    is_flag=True,
    help="Remove the sidecar when it stops, with its checkpoints (unless --keep-state).",
)
@click.option(
    "--remove",
    is_flag=True,
    help="Remove CONTAINER's sidecar(s) and the state volume we created (unless --keep-state).",
)
@click.option(
    "--keep-state",
    is_flag=True,
    help="Keep the checkpoints in the volume logsidecar-state-CONTAINER (with --rm or --remove).",
)
@click.option(
    "--docker-socket",
    is_flag=True,
    help="Mount the Docker socket read-only so the sidecar adds container metadata.",
)
@click.option(
    "--env",
    "-e",
    "env",
    multiple=True,
    help="KEY=VALUE environment for the sidecar (e.g. OTEL_EXPORTER_OTLP_ENDPOINT).",
)
@click.option("--network", help="Network to attach the sidecar to.")
@click.argument("tail_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def sidecar(
    ctx: click.Context,
    container: str,
    image: str,
    pull: bool,
    auto_remove: bool,
    remove: bool,
    keep_state: bool,
    docker_socket: bool,
    env: tuple[str, ...],
    network: str | None,
    tail_args: tuple[str, ...],
) -> None:
    """Start a logsidecar container sharing CONTAINER's volumes read-only.

    Options after the container name are passed to `logsidecar tail` inside the sidecar.

    \b
    Examples:
      logsidecar docker sidecar web
      logsidecar docker sidecar web --rm -e OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317 --output otlp
      logsidecar docker sidecar web '/usr/local/apache2/logs/*_log'
      logsidecar docker sidecar --remove web
    """
    from logsidecar.containers import sidecar as sidecar_mod
    from logsidecar.containers.engine import EngineError
    from logsidecar.containers.mounts import NotOnMount, stdout_logging_advice, stdout_symlinks

    client = _client(ctx)
    target = _container(client, container)
    if remove:
        removed, kept = sidecar_mod.remove_sidecars(client, target, keep_state=keep_state)
        click.echo("removed: " + (", ".join(removed) if removed else "nothing (no sidecar found)"))
        if kept:
            click.echo("kept: " + ", ".join(kept))
        return
    environment = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--env")
        environment[key] = value
    try:
        paths = _tail_paths(tail_args)
        locations = sidecar_mod.log_locations(target.attrs, paths)
    except NotOnMount as exc:
        raise Finding(f"{exc} No sidecar started: it would see none of these files.") from exc
    for location in locations:
        # Logs linked to the writer's stdout/stderr (the official httpd image's access_log ->
        # /proc/self/fd/1) lead to the sidecar's own stdout there and are refused: say so now.
        redirected = stdout_symlinks(location.host_dir)  # nothing when the engine is on another host
        if redirected:
            click.echo(
                "logsidecar: " + stdout_logging_advice(target.name, location.container_dir, redirected),
                err=True,
            )
    try:
        started = sidecar_mod.start_sidecar(
            client,
            target,
            image=image,
            tail_args=tail_args,
            auto_remove=auto_remove,
            environment=environment,
            mount_docker_socket=docker_socket,
            network=network,
            pull=pull,
            paths=paths,
            keep_state=keep_state,
        )
    except EngineError as exc:
        raise EnvironmentProblem(str(exc)) from exc
    from logsidecar.containers.state import state_volume_name

    where = (
        f"checkpoints in volume {state_volume_name(target.name)}"
        if not auto_remove or keep_state
        else "checkpoints removed with it (--rm; --keep-state keeps them)"
    )
    click.echo(
        f"started {started.name} ({started.short_id}) sharing the volumes of {target.name} read-only; {where}"
    )


def _tail_paths(tail_args: tuple[str, ...]) -> tuple[str, ...]:
    """The PATH_OR_GLOB arguments among the options passed on to `logsidecar tail` (an option's value,
    `--state-dir /x`, is not one)."""
    from logsidecar.cli.tail import command as tail_command

    parsed = tail_command.make_context("tail", list(tail_args), resilient_parsing=True)
    return tuple(parsed.params.get("paths") or ())


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


@command.command("audit")
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

    client = _client(ctx)
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


@command.command("check-image")
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

    client = _client(ctx)
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
