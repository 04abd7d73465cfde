"""`logsidecar health`: ask a running logsidecar one of its probes, for container HEALTHCHECKs and
Kubernetes exec probes (the sidecar image has no curl). Exit 0 when the probe passes, 1 otherwise,
with a one-line reason on stdout. Connection problems are reasons too, never tracebacks.

    --probe livez    the event loop answers (Kubernetes liveness and startup probes)
    --probe readyz   started and following a file, never backend state (readiness; Docker HEALTHCHECK)
    --probe healthz  delivery and lag included (alerting); the default, as before the probes were split
    --ready          an alias of --probe readyz

    HEALTHCHECK CMD ["logsidecar", "health", "--probe", "readyz"]

The default stays healthz: scripts that ran `logsidecar health` keep asking what they asked.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

import click

from logsidecar.cli.params import output_format_option
from logsidecar.settings.units import parse_duration, parse_http_addr

DEFAULT_URL = "http://127.0.0.1:9464"


def default_url() -> str:
    """The URL of our own endpoint: from LOGSIDECAR_HTTP_ADDR when set (a wildcard bind is reached
    on loopback), else the default loopback address."""
    addr = os.environ.get("LOGSIDECAR_HTTP_ADDR", "").strip()
    if not addr:
        return DEFAULT_URL
    try:
        host, port = parse_http_addr(addr)
    except ValueError:
        return DEFAULT_URL
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


PROBES = ("livez", "readyz", "healthz")


def probe(url: str, *, name: str = "healthz", timeout_s: float) -> tuple[bool, str]:
    """(passes, one-line reason) from GET /<name> under `url` (`name` one of PROBES)."""
    ok, answer = probe_answer(url, name=name, timeout_s=timeout_s)
    return ok, str(answer["summary"])


def probe_answer(url: str, *, name: str = "healthz", timeout_s: float) -> tuple[bool, dict[str, Any]]:
    """(passes, the endpoint's JSON answer); when there is none (unreachable, not our endpoint),
    {"status": "unreachable" or "unknown", "summary": why, "url": ...}. Always has a "summary"."""
    target = url.rstrip("/") + "/" + name
    try:
        with urllib.request.urlopen(target, timeout=timeout_s) as response:  # noqa: S310 - our own URL
            return True, _answer(response.read(), f"HTTP {response.status}", target)
    except urllib.error.HTTPError as error:
        return False, _answer(error.read(), f"HTTP {error.code} from {target}", target)
    except urllib.error.URLError as error:
        why = getattr(error.reason, "strerror", None) or error.reason
        return False, _unreachable(target, f"unhealthy: cannot reach {target}: {why}")
    except (TimeoutError, OSError) as error:
        return False, _unreachable(target, f"unhealthy: cannot reach {target}: {error}")


def _unreachable(target: str, summary: str) -> dict[str, Any]:
    return {"status": "unreachable", "summary": summary, "url": target}


def _answer(body: bytes, fallback: str, target: str) -> dict[str, Any]:
    try:
        answer = json.loads(body)
        if isinstance(answer, dict) and "summary" in answer:
            return {**answer, "summary": str(answer["summary"])}
    except ValueError:
        pass
    return {"status": "unknown", "summary": fallback, "url": target}


@click.command("health")
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help=f"Base URL of logsidecar's HTTP endpoint. [default: from LOGSIDECAR_HTTP_ADDR, else {DEFAULT_URL}]",
)
@click.option(
    "--probe",
    "probe_name",
    type=click.Choice(PROBES),
    default=None,
    help="livez: the event loop answers (liveness, startup); readyz: started and following a file, "
    "never backend state (readiness); healthz: delivery and lag included (alerting).  [default: healthz]",
)
@click.option("--ready", is_flag=True, help="Same as --probe readyz.")
@click.option(
    "--timeout", default="3s", show_default=True, metavar="DURATION", help="Give up after this long."
)
@output_format_option()
def command(url: str | None, probe_name: str | None, ready: bool, timeout: str, output_format: str) -> None:
    """Exit 0 if the running logsidecar passes the probe, 1 if not; print why in one line (text), or
    the endpoint's whole answer (json: status, summary, reasons, files followed, bytes behind ...).

    \b
    Examples:
      logsidecar health
      logsidecar health --probe readyz --url http://127.0.0.1:9464
      logsidecar health -o json | jq .reasons
      HEALTHCHECK CMD ["logsidecar", "health", "--probe", "readyz"]      (in a Dockerfile)
    """
    if ready and probe_name not in (None, "readyz"):
        raise click.UsageError(f"--ready means --probe readyz; it cannot go with --probe {probe_name}")
    try:
        timeout_s = parse_duration(timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--timeout") from None
    name = "readyz" if ready else probe_name or "healthz"
    ok, answer = probe_answer(url or default_url(), name=name, timeout_s=timeout_s)
    if output_format == "json":
        click.echo(json.dumps(answer, indent=2))
    else:
        click.echo(answer["summary"])
    raise SystemExit(0 if ok else 1)
