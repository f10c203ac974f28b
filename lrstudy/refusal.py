"""The workflow's refusals, printed as the sentence they are.

Snakemake prints an exception raised while it reads the workflow with its type, the file and line, and the
source lines it came through:

    ConfigError in file "/home/me/lrstudy/workflow/rules/common.smk", line 76:
    invalid config: train.epochs: 0 is less than the minimum of 1
      File "/home/me/lrstudy/workflow/rules/common.smk", line 76, in <module>
      File "/home/me/lrstudy/lrstudy/config.py", line 434, in checked_study

A user needs the second line only. Snakemake catches Exception there (and in input functions), not
SystemExit, which Python prints as it is, exit status 1: so a refusal leaves as SystemExit(sentence).
Nothing is left behind: Snakemake takes its directory lock only after it has read the workflow and
planned the jobs. tests/test_snakemake_compat.py pins that Snakemake lets SystemExit through.

    refuse("`--forcerun` reads ... as something to force ...")     # instead of raise WorkflowError(...)
    STUDY = said_alone(checked_study, config, schema)              # its ConfigError, as a sentence
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

from lrstudy.config import ConfigError

P = ParamSpec("P")
T = TypeVar("T")


def refuse(sentence: str) -> NoReturn:
    """Stop the workflow (exit status 1) with `sentence` alone on stderr."""
    raise SystemExit(sentence)


def said_alone(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """fn(*args, **kwargs), its ConfigError (bad input, named in a sentence) said alone, as refuse() says it."""
    try:
        return fn(*args, **kwargs)
    except ConfigError as e:
        refuse(str(e))
