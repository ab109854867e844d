"""The base of errors a user can fix (a bad file, a wrong path, a dead server): the CLI prints their
message as one line and exits 2 (``exit_code``), and shows the traceback only with ``--debug``."""


class UserError(Exception):
    exit_code = 2
