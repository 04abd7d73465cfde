"""`python -m logsidecar.cli.resolve ARGS...`: resolve the command line `logsidecar ARGS...` (a `tail`
command) exactly as `tail` does, write the resolved run's bytes to stdout (or the errors, a line
each, and exit status 2), and run nothing. The lean runtime (`logsidecar.runtime`) starts it on
SIGHUP, with its own arguments and environment, so that click and pydantic never load into the
long-lived process (`service.handover.resolve_again`)."""

from __future__ import annotations

import sys

from logsidecar.cli import RESOLVE_ONLY, main

if __name__ == "__main__":
    main.main(args=sys.argv[1:], prog_name="logsidecar", obj={RESOLVE_ONLY: True})
