"""User-facing errors: the CLI prints their message on one line and exits with status 2."""


class HarnessError(Exception):
    """A problem with what the user asked for (bad name, value, file); the message says how to fix it."""


class TrialFailed(Exception):
    """A trial could not finish (non-finite loss, a plugin raised); the run records it and goes on."""
