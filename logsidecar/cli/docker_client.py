"""What every `logsidecar docker` subcommand shares: the engine connection and its two kinds of
failure (a finding, exit 1; an environment problem, exit 2)."""

from __future__ import annotations

import click


class EnvironmentProblem(click.ClickException):
    """The engine, a container, an image or a name is not as the command needs it: exit code 2."""

    exit_code = 2


class Finding(click.ClickException):
    """What the command was asked to check is wrong (exit code 1)."""

    exit_code = 1


def client_of(ctx: click.Context):
    from logsidecar.containers.engine import EngineError, connect

    try:
        return connect(ctx.obj.get("docker_host"))
    except EngineError as exc:
        raise EnvironmentProblem(str(exc)) from exc


def container_of(client, name: str):
    from logsidecar.containers.engine import EngineError, get_container

    try:
        return get_container(client, name)
    except EngineError as exc:
        raise EnvironmentProblem(str(exc)) from exc
