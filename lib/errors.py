"""One exception hierarchy for the runbook: every error says what is wrong and what to do."""

from __future__ import annotations


class RunbookError(Exception):
    """Base of every error the runbook raises on purpose."""

    exit_code = 1


class ParamsError(RunbookError):
    """The parameters are invalid; raised before any AWS call, nothing changed."""

    exit_code = 2

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = [f"  {field}: {message}" for field, message in problems]
        super().__init__("invalid parameters:\n" + "\n".join(lines))


class GuardRefused(RunbookError):
    """A guard refused to run (wrong account, region, unconfirmed protected env, lock held)."""

    exit_code = 2


class CredentialsRefused(GuardRefused):
    """The AWS profile or role of the params cannot be used; raised before any change, nothing changed."""


class PreflightRefused(RunbookError):
    """The world cannot hold what the parameters ask for; refused at plan time, nothing changed."""

    exit_code = 2


class StepFailed(RunbookError):
    """A step could not converge (an AWS call failed after retries, a wait timed out)."""

    exit_code = 1


class WaitTimedOut(StepFailed):
    """A resource did not reach the state we waited for within the time allowed."""


class NotOurs(StepFailed):
    """A resource has the name this runbook gives it but is not tagged as this runbook's.

    The one answer every single-resource finder in `aws/` gives for it (a list finder leaves such resources out):
    a step that would create or change the resource lets it refuse; destroy, export and checks catch it and
    leave the resource alone."""

    def __init__(self, kind: str, name: str, ident: str, where: str = "",
                 fix: str = "rename the environment or remove it"):
        self.kind, self.name, self.ident = kind, name, ident
        article = "an" if kind[0] in "AEIOU" else "a"
        super().__init__(f"{article} {kind} named {name} exists{where} ({ident}) but is not tagged as this "
                         f"runbook's; {fix}")
