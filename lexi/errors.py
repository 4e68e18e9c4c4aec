"""The one exception type for mistakes a user can fix (config, data, paths, devices).

The CLI prints its message without a traceback and exits non-zero; everything else is a
bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem the user caused and can fix; the message says what and how."""
