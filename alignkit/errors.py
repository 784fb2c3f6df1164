"""One error type for every bad input: the CLI prints its message on one line and exits 2."""


class AlignkitError(Exception):
    """A user-facing error: the message names the bad input and the fix.

    The CLI catches it, prints ``error: <message>`` on one line (no traceback) and exits
    with code 2. Library code raises it at the boundary, never deep inside a metric.
    """

    exit_code = 2
