"""`python -m logsidecar` runs the CLI."""

from logsidecar.cli import run

if __name__ == "__main__":
    run()
