"""Errors, the default PATH and output, shared by every module of tools/dockerfile-check.py.

The two exception classes are how the modules report a problem to main(): a CheckError becomes a
FAIL line (exit status 1), a UsageError exit status 2."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class CheckError(Exception):
    """The Dockerfile, the context or a build step is wrong (reported as FAIL)."""


class UsageError(Exception):
    """The Dockerfile uses something this interpreter does not do (exit 2)."""


class Interrupted(BaseException):
    pass


def say(msg):
    print(msg, flush=True)
