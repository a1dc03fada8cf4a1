"""What a preflight found: one :class:`Need` per file, folder or value the config relies on.

A :class:`PreflightReport` holds them all, the problems first; :meth:`PreflightReport.text` is what
``preflight=only`` prints and what a failed preflight raises (:class:`PreflightError`, or
:class:`MissingFilesError` when every problem is a missing file or folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from faceprior.utils.runtime import ReportError

#: kinds of need: a file, a folder (image folder or LMDB), a config value, a note about the run
KINDS = ("file", "folder", "value", "note")


@dataclass(frozen=True)
class Need:
    """One thing the composed config needs.

    Attributes:
        key: the config key that names it (``model.decoder_prior``, ``benchmarks.celeba_test.gt_root``).
        kind: one of :data:`KINDS`.
        what: what it is (``StyleGAN2 prior``, ``training images``).
        path: where it is expected (files and folders).
        ok: whether it is there (or will be: generated data, bundled files).
        fix: how to provide it (a command, a URL, the value to set).
        note: how an ``ok`` need is met when that is not plain (``generated on first use``).
        scope: the stage of a multi-stage experiment it belongs to (``""``: the run itself).
    """

    key: str
    kind: str
    what: str
    path: str | None = None
    ok: bool = True
    fix: str = ""
    note: str = ""
    scope: str = ""

    def line(self) -> str:
        """One line: ``[stage] key: what 'path' ... — fix``."""
        where = f"[{self.scope}] " if self.scope else ""
        place = f" '{self.path}'" if self.path else ""
        if self.ok:
            extra = f" ({self.note})" if self.note else ""
            return f"{where}{self.key}: {self.what}{place}{extra}"
        verb = " do not exist" if "' and '" in (self.path or "") else " does not exist"
        missing = verb if self.kind in ("file", "folder") and self.path else ""
        fix = f"; {self.fix}" if self.fix else ""
        return f"{where}{self.key}: {self.what}{place}{missing}{fix}"


@dataclass
class PreflightReport:
    """Every need of one config (or of every stage of a multi-stage experiment)."""

    title: str
    needs: list[Need] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[Need]:
        """The needs that are not met."""
        return [n for n in self.needs if not n.ok]

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def add(self, need: Need) -> None:
        """Record a need, one line per thing to do: a need for a file already recorded (or a
        problem with the same fix, e.g. both folders of a benchmark) takes the new key; the same
        need in another stage takes the stage's name."""
        for i, old in enumerate(self.needs):
            if (old.kind, old.ok) != (need.kind, need.ok):
                continue
            same_thing = old.path is not None and old.path == need.path and old.fix == need.fix
            same_fix = (
                not need.ok
                and need.kind in ("file", "folder")
                and None not in (old.path, need.path)
                and bool(need.fix)
                and old.fix == need.fix
            )
            if old.scope != need.scope:
                if same_thing and old.key == need.key:
                    self.needs[i] = replace(old, scope=_joined(old.scope, need.scope, ", "))
                    return
                continue
            if not (same_thing or same_fix):
                continue
            key = _joined(old.key, need.key, ", ")
            path = _joined(old.path or "", need.path or "", "' and '") or None
            self.needs[i] = replace(old, key=key, path=path)
            return
        self.needs.append(need)

    def merge(self, other: PreflightReport, scope: str) -> None:
        """Add ``other``'s needs under ``scope`` (a stage name); footers are kept once."""
        for need in other.needs:
            self.add(replace(need, scope=need.scope or scope))
        self.footer += [line for line in other.footer if line not in self.footer]

    def text(self, found: bool = False) -> str:
        """The report: the problems (each with its key and how to fix it), the notes, and with
        ``found`` also every file and folder that is in place."""
        problems = self.problems
        checked = [n for n in self.needs if n.kind in ("file", "folder")]
        if problems:
            head = (
                f"preflight: {len(problems)} problem(s) in {self.title}; nothing was built "
                "(preflight=only re-checks without running)"
            )
        else:
            head = f"preflight: {self.title} is ready ({len(checked)} files and folders checked)"
        lines = [head]
        lines += [f"  - {n.line()}" for n in problems]
        notes = [n for n in self.needs if n.kind == "note"]
        if notes:
            lines.append("notes:")
            lines += [f"  - {n.line()}" for n in notes]
        present = [n for n in checked if n.ok]
        if found and present:
            lines.append("files and folders this config reads (present):")
            lines += [f"  - {n.line()}" for n in present]
        if problems or found:
            lines += self.footer
        return "\n".join(lines)


def _joined(old: str, new: str, sep: str) -> str:
    """``old`` with ``new`` appended as one more ``sep``-separated item, unless it is one."""
    items = old.split(sep) if old else []
    return old if not new or new in items else sep.join([*items, new])


class PreflightError(ReportError, ValueError):
    """The preflight found problems; the message is the whole report."""

    def __init__(self, report: PreflightReport) -> None:
        super().__init__(report.text())
        self.report = report


class MissingFilesError(PreflightError, FileNotFoundError):
    """A preflight whose problems are all missing files or folders."""


def error_for(report: PreflightReport) -> PreflightError:
    """The exception for a report with problems (:class:`MissingFilesError` when only files are
    missing)."""
    if all(n.kind in ("file", "folder") for n in report.problems):
        return MissingFilesError(report)
    return PreflightError(report)
