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


class PreflightRefused(RunbookError):
    """The world cannot hold what the parameters ask for; refused at plan time, nothing changed."""

    exit_code = 2


class StepFailed(RunbookError):
    """A step could not converge (an AWS call failed after retries, a wait timed out)."""

    exit_code = 1


class WaitTimedOut(StepFailed):
    """A resource did not reach the state we waited for within the time allowed."""
