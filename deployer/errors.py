"""Exit codes and the two errors the CLI turns into them."""

EXIT_OK = 0
EXIT_DEPLOY_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input: arguments, build output, a parameter, or a target that cannot take the deploy.

    Raised before anything is changed in AWS; the CLI prints it and exits 2.
    """


class DeployFailed(Exception):
    """AWS refused or rolled back the operation; the CLI prints it and exits 1."""
