"""Errors the CLI turns into one-line messages and exit codes (docs/ARCHITECTURE.md, "Errors and exit codes")."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class NstError(Exception):
    """A failure the user can act on; its message is printed as one line on stderr."""

    exit_code = EXIT_FAILED


class UsageError(NstError):
    """Bad flags or arguments (exit 2)."""

    exit_code = EXIT_USAGE


class InputError(NstError):
    """An input image, model or file that cannot be used (exit 1)."""

    exit_code = EXIT_FAILED


def first_line(error: Exception) -> str:
    """A library error as a short phrase for a one-line message: its first line (at most 200 characters),
    or its type's name when it has no message."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def reject_first(checks: dict[str, bool]) -> None:
    """Raise a UsageError with the message of the first failed check ({message: failed})."""
    for message, failed in checks.items():
        if failed:
            raise UsageError(message)
