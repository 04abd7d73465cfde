"""`python -m logsidecar` runs the CLI."""

from logsidecar.cli import main

if __name__ == "__main__":
    main()
