"""A problem found in a rule file, located as ``path:line:col``."""

from __future__ import annotations

from dataclasses import dataclass

from loader.errors import TsaError


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class RuleError(TsaError):
    """One or more rule files are invalid; the message lists every problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in rule files:\n"
            + "\n".join(str(p) for p in self.problems)
        )
