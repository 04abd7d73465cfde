"""`logsidecar health`: ask a running logsidecar whether it is healthy, for container HEALTHCHECKs
(the sidecar image has no curl). Exit 0 when healthy (or ready, with --ready), 1 otherwise, with a
one-line reason on stdout. Connection problems are reasons too, never tracebacks.

    HEALTHCHECK CMD ["logsidecar", "health"]
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


def probe(url: str, *, ready: bool, timeout_s: float) -> tuple[bool, str]:
    """(healthy, one-line reason) from GET /healthz (or /readyz) under `url`."""
    ok, answer = probe_answer(url, ready=ready, timeout_s=timeout_s)
    return ok, str(answer["summary"])


def probe_answer(url: str, *, ready: bool, timeout_s: float) -> tuple[bool, dict[str, Any]]:
    """(healthy, the endpoint's JSON answer); when there is none (unreachable, not our endpoint),
    {"status": "unreachable" or "unknown", "summary": why, "url": ...}. Always has a "summary"."""
    target = url.rstrip("/") + ("/readyz" if ready else "/healthz")
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
@click.option("--ready", is_flag=True, help="Check readiness (/readyz) instead of liveness (/healthz).")
@click.option(
    "--timeout", default="3s", show_default=True, metavar="DURATION", help="Give up after this long."
)
@output_format_option()
def command(url: str | None, ready: bool, timeout: str, output_format: str) -> None:
    """Exit 0 if the running logsidecar is healthy, 1 if not; print why in one line (text), or the
    endpoint's whole answer (json: status, summary, reasons, files followed, bytes behind ...).

    \b
    Examples:
      logsidecar health
      logsidecar health --ready --url http://127.0.0.1:9464
      logsidecar health -o json | jq .reasons
      HEALTHCHECK CMD ["logsidecar", "health"]      (in a Dockerfile)
    """
    try:
        timeout_s = parse_duration(timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--timeout") from None
    ok, answer = probe_answer(url or default_url(), ready=ready, timeout_s=timeout_s)
    if output_format == "json":
        click.echo(json.dumps(answer, indent=2))
    else:
        click.echo(answer["summary"])
    raise SystemExit(0 if ok else 1)
