"""How `rental-platform` ends: its exit codes, and the error that means a usage mistake."""

EXIT_REFUSED = 1  # the gateway refused the command, or the CA gave no certificate
EXIT_USAGE = 2
EXIT_TIMEOUT = 3  # no broker accepted it, or no result came in time


class UsageError(Exception):
    """A mistake on the command line or in a file it names."""
