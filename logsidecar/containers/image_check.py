"""The build-time VOLUME pitfall: a build step that writes into a path after a `VOLUME` declared it.

Docker discards what RUN writes under a declared volume path once the VOLUME instruction has run
(the classic builder snapshots the volume's content at the VOLUME step; later RUN changes to it are
thrown away), so files, permissions and ownership set there are silently lost at run time. COPY/ADD
into a volume path after VOLUME do persist in the image layer but are hidden behind the volume as soon
as a named or inherited volume is mounted, which is how sidecars share logs: we flag them as well.

We read the image's history oldest-first. A step is flagged when it comes after the VOLUME step that
declared a path and its instruction text names that path or a path below it. The history keeps the
instruction text (classic builder: `/bin/sh -c #(nop)  VOLUME [/x]`, `/bin/sh -c mkdir /x/y`,
`/bin/sh -c #(nop) COPY file:... in /x/`; BuildKit: `VOLUME [/x]`, `RUN /bin/sh -c ... # buildkit`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

_VOLUME_STEP = re.compile(r"(?:#\(nop\)\s+)?VOLUME\s+\[([^\]]*)\]")


@dataclass(frozen=True, slots=True)
class Finding:
    step: int  # 1-based, oldest first
    instruction: str
    volume: str
    kind: str  # "run" (writes discarded) or "copy" (hidden by any mounted volume)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ImageReport:
    image: str
    volumes: list[str]
    findings: list[Finding]

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "volumes": self.volumes,
            "findings": [f.to_dict() for f in self.findings],
        }


def _declared(created_by: str) -> list[str]:
    match = _VOLUME_STEP.search(created_by)
    if not match:
        return []
    # "[/a /b]" (classic) or '["/a","/b"]' (BuildKit, JSON form)
    return [p.strip().strip('"') for p in re.split(r"[\s,]+", match.group(1)) if p.strip().strip('"')]


def _step_kind(created_by: str) -> str | None:
    text = created_by.strip()
    if re.search(r"#\(nop\)\s+(COPY|ADD)\b", text) or re.match(r"(COPY|ADD)\b", text):
        return "copy"
    if "#(nop)" in text:
        return None  # metadata-only step (ENV, LABEL, CMD ...)
    if re.match(
        r"(ENV|LABEL|CMD|ENTRYPOINT|EXPOSE|USER|WORKDIR|ARG|STOPSIGNAL|HEALTHCHECK|SHELL|ONBUILD|VOLUME)\b",
        text,
    ):
        return None
    return "run"


def _mentions(text: str, volume: str) -> bool:
    base = re.escape(volume.rstrip("/"))
    return re.search(rf"(?<![\w/.-]){base}(?=$|[/\s'\";&|)\]]|$)", text) is not None


def check_history(image: str, volumes: list[str], history_newest_first: list[dict[str, Any]]) -> ImageReport:
    declared: list[str] = []
    findings: list[Finding] = []
    for index, entry in enumerate(reversed(history_newest_first), start=1):
        created_by = entry.get("CreatedBy", "") or ""
        new = _declared(created_by)
        if new:
            declared.extend(v for v in new if v not in declared)
            continue
        kind = _step_kind(created_by)
        if kind is None:
            continue
        for volume in declared:
            if _mentions(created_by, volume):
                findings.append(Finding(step=index, instruction=created_by.strip(), volume=volume, kind=kind))
    return ImageReport(image=image, volumes=sorted(volumes or declared), findings=findings)


def check_image(client: Any, image_ref: str) -> ImageReport:
    image = client.images.get(image_ref)
    volumes = sorted(((image.attrs.get("Config") or {}).get("Volumes") or {}).keys())
    return check_history(image_ref, volumes, image.history())
