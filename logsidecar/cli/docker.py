"""`logsidecar docker ...`: attach to a container's log files, start a sidecar, audit volumes, check images.

Exit codes, the same for every subcommand: 0 ok; 1 a finding (check-image found a write into a
volume, the container's logs are on no volume, a link leads out of the volume); 2 a usage or
environment error (a wrong option, the engine unreachable, no such container or image, a name taken).
Every error is one message naming the container, path or image, and what to do; never a traceback.
"""

from __future__ import annotations

import os
import posixpath
import sys

import click

from logsidecar.cli.docker_audit import audit, check_image
from logsidecar.cli.docker_client import EnvironmentProblem, Finding, client_of, container_of

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

    client = client_of(ctx)
    target = container_of(client, container)
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
        state = plan.run.state_dir
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

    client = client_of(ctx)
    target = container_of(client, container)
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


command.add_command(audit)
command.add_command(check_image)
