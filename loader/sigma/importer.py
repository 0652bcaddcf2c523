"""`import-sigma`: Sigma YAML files or folders in, one rule file per Sigma rule out, then the
written files validated as `validate` would, and a report of what became of every rule.

pySigma is an optional extra; without it the command says how to install it, in one line.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loader.errors import TsaError

INSTALL_HINT = (
    "import-sigma needs pySigma: pip install 'timely-security-analytics[sigma]' "
    "(or: pip install 'pySigma>=2.0.1,<3')"
)


@dataclass
class ImportReport:
    outcomes: list[Any]
    written: list[Path]
    problems: list[Any]
    out: Path

    def render(self) -> str:
        width = max((len(o.path) for o in self.outcomes), default=0)
        lines = []
        for o in self.outcomes:
            what = f"-> {self.out / (o.name + '.sql')}" if o.status == "converted" else o.reason
            title = f" ({o.title})" if o.title and o.status != "converted" else ""
            lines.append(f"{o.status:<9} {o.path:<{width}}  {what}{title}")
        counts = Counter(o.status for o in self.outcomes)
        files = len({o.path for o in self.outcomes})
        verdict = f"{len(self.problems)} problem(s)" if self.problems else "no problems"
        lines += [
            "",
            f"{len(self.outcomes)} Sigma rule(s) in {files} file(s): {counts['converted']} "
            f"converted, {counts['skipped']} skipped, {counts['failed']} failed",
            f"{len(self.written)} rule file(s) written to {self.out}; validate: {verdict}",
        ]
        return "\n".join(lines)


def _pysigma() -> Any:
    if sys.version_info < (3, 11):
        raise TsaError("import-sigma needs pySigma 2, which needs Python 3.11 or newer")
    try:
        from loader.sigma import convert
    except ModuleNotFoundError as exc:  # pySigma, or one of its own dependencies, is missing
        if exc.name and exc.name.split(".")[0] in ("sigma", "yaml", "pyparsing"):
            raise TsaError(INSTALL_HINT) from exc
        raise
    return convert


def import_sigma(
    sources: Sequence[str],
    out: str,
    force: bool = False,
    source_url: str | None = None,
    license: str | None = None,
    dedup: str | None = None,
) -> ImportReport:
    """Convert every Sigma rule under ``sources`` into ``out``; files already there are
    replaced only with ``force`` (otherwise nothing is written)."""
    missing = [s for s in sources if not Path(s).exists()]
    if missing:
        raise TsaError(f"no such file or folder: {', '.join(missing)}")
    if dedup:
        from loader.durations import parse_duration

        parse_duration(dedup)  # a ConfigError says what a duration looks like
    convert = _pysigma()
    options = convert.Options(source_url, license or convert.DEFAULT_LICENSE, dedup)
    outcomes = convert.convert_sources(list(sources), options)
    target = Path(out)
    converted = [o for o in outcomes if o.status == "converted"]
    files = [target / f"{o.name}.sql" for o in converted]
    existing = [str(f) for f in files if f.exists()]
    if existing and not force:
        shown = ", ".join(existing[:3]) + (
            f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        )
        raise TsaError(f"{shown} already exist(s); --force replaces them (nothing was written)")
    clashes = [name for name, n in Counter(o.name for o in converted).items() if n > 1]
    if clashes:
        raise TsaError(f"two Sigma files give the same rule name: {', '.join(clashes)}")
    target.mkdir(parents=True, exist_ok=True)
    for outcome, path in zip(converted, files, strict=True):
        path.write_text(outcome.text, encoding="utf-8")
    from loader.rules.validate import load_rules

    problems = load_rules([str(f) for f in files])[1] if files else []
    return ImportReport(outcomes, files, sorted(problems), target)
