"""Loud parse failure: a file whose recent lines mostly fail to parse is said so, per file.

The records still go out (raw, flagged `logsidecar.parse_error`): nothing is lost, but a newcomer
whose LogFormat `auto` does not know would otherwise see only raw bodies downstream and an "ok"
health. So, per file, the lines of each batch and how many did not parse are added to a window of
recent lines; once the window holds `MIN_LINES`, more than `FAILING_SHARE` of them failing makes the
file *failing*: one `parse_failing` event (warning) names the file, the share that failed, one
example line (secrets redacted, cut at `EXAMPLE_CHARS`; the self-log escapes control characters),
why it failed, and for `auto` the closest format with the directive where it diverged. While the
file keeps failing the warning comes again at most every `WARN_EVERY_S`. A window that is no longer
mostly failing, or the file released, ends it (`parse_recovered`). Every event carries
`failing_files`, the paths failing now: /healthz turns that into its "parse" condition.

Cost: per batch, a dict lookup and two additions. The example is parsed again (a fresh parser on
the batch's last lines) only when a warning is due.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from logsidecar import events
from logsidecar.events import Event, ParseFailing

MIN_LINES = 20  # fewer recent lines than this say too little to call a file failing
WINDOW_LINES = 1000  # the recent lines judged together (then a new window starts)
FAILING_SHARE = 0.5  # "mostly": more than this share of the recent lines did not parse
WARN_EVERY_S = 300.0  # while a file keeps failing, its warning comes again at most this often
EXAMPLE_CHARS = 300

#: (path, the batch's last lines) -> fields describing one unparsed line: example, reason, format,
#: and for `auto` closest_format and diverged. Called only when a warning is due.
Explain = Callable[[str, Sequence[bytes]], Mapping[str, Any]]


@dataclass(slots=True)
class _FileWindow:
    path: str
    lines: int = 0
    unparsed: int = 0
    failing: bool = False
    warned_at: float = 0.0


class ParseWatch:
    """Per-file shares of unparsed lines; see the module docstring."""

    def __init__(self, explain: Explain, clock: Callable[[], float] = time.monotonic) -> None:
        self._explain = explain
        self._clock = clock
        self._files: dict[str, _FileWindow] = {}

    def __len__(self) -> int:
        """Files with a window (only those with unparsed lines: memory stays bounded by them)."""
        return len(self._files)

    def failing_files(self) -> list[str]:
        return sorted(w.path for w in self._files.values() if w.failing)

    def note(self, file_key: str, path: str, lines: Sequence[bytes], unparsed: int) -> None:
        """One parsed batch of `file_key`: `unparsed` of its `lines` did not parse."""
        window = self._files.get(file_key)
        if window is None:
            if not unparsed:
                return  # nothing to watch yet: a file that parses costs no entry
            window = self._files[file_key] = _FileWindow(path)
        window.path = path
        window.lines += len(lines)
        window.unparsed += unparsed
        if window.lines < MIN_LINES:
            return
        failing = window.unparsed > FAILING_SHARE * window.lines
        if failing:
            now = self._clock()
            if not window.failing or now - window.warned_at >= WARN_EVERY_S:
                window.failing = True
                window.warned_at = now
                self._warn(window, lines)
        elif window.failing:
            window.failing = False
            self._recovered(window, "most recent lines parse again")
        if window.lines >= WINDOW_LINES:
            if not window.failing and not window.unparsed:
                del self._files[file_key]
            else:
                window.lines = window.unparsed = 0

    def forget(self, file_key: str) -> None:
        """The file was released: no more lines come from it."""
        window = self._files.pop(file_key, None)
        if window is not None and window.failing:
            window.failing = False
            self._recovered(window, "file released")

    def _warn(self, window: _FileWindow, lines: Sequence[bytes]) -> None:
        try:
            explained = dict(self._explain(window.path, lines[-MIN_LINES:]))
        except Exception as exc:  # noqa: BLE001 - a failing explanation must not stop the warning
            explained = {"reason": f"(could not explain: {type(exc).__name__})"}
        share = window.unparsed / window.lines
        events.emit(
            ParseFailing(
                path=window.path,
                unparsed_lines=window.unparsed,
                recent_lines=window.lines,
                unparsed_share=round(share, 3),
                format=explained.get("format"),
                example=explained.get("example"),
                reason=explained.get("reason"),
                closest_format=explained.get("closest_format"),
                diverged=explained.get("diverged"),
                fix="give the LogFormat the server writes: --format 'logformat:<LogFormat>' (per file: "
                "--format 'GLOB=logformat:...'); the lines are forwarded raw meanwhile",
                failing_files=self.failing_files(),
            )
        )

    def _recovered(self, window: _FileWindow, why: str) -> None:
        events.emit(Event.PARSE_RECOVERED, path=window.path, reason=why, failing_files=self.failing_files())
