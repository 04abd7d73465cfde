"""The build-time VOLUME pitfall: a build step that writes into a path after a `VOLUME` declared it.

The classic builder discards what RUN writes under a declared volume path once the VOLUME
instruction has run, so files, permissions and ownership set there are silently lost at run time.
COPY/ADD into a volume path after VOLUME do persist in the image layer but are hidden behind the
volume as soon as a named or inherited volume is mounted, which is how sidecars share logs.

We replay the image's history oldest-first (`build_history`), keeping what the build kept: the
volumes declared so far, the working directory (WORKDIR, resolved like the builder does) and the
environment (ENV, and the build args a RUN ran with). A RUN is judged by `shell_writes`: only a
certain write under a declared volume is a finding (`RUN ls /vol` is not); a command whose writes
its text cannot show (`sh setup.sh` in a volume, an unknown variable) is "cannot tell", reported
apart and never counted as a finding. A COPY/ADD is a finding when its destination is in a volume,
"cannot tell" when it is an ancestor of one (what the source holds is not in the history).
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass
from typing import Any

from logsidecar.containers.build_history import Step, copy_destination, env_pairs, parse_step, volume_paths
from logsidecar.containers.engine import local_image
from logsidecar.containers.shell_writes import concerns, expand, inside, resolve, shell_writes


@dataclass(frozen=True, slots=True)
class Finding:
    step: int  # 1-based, oldest first
    instruction: str
    volume: str
    kind: str  # "run" (writes discarded), "copy" (hidden by any mounted volume), "cannot_tell"
    detail: str = ""  # what is written, or why it cannot be told

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ImageReport:
    image: str
    volumes: list[str]
    findings: list[Finding]  # certain writes
    cannot_tell: list[Finding]

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "volumes": self.volumes,
            "findings": [f.to_dict() for f in self.findings],
            "cannot_tell": [f.to_dict() for f in self.cannot_tell],
        }


def check_history(image: str, volumes: list[str], history_newest_first: list[dict[str, Any]]) -> ImageReport:
    declared: list[str] = []
    env: dict[str, str] = {}
    cwd = "/"
    findings: list[Finding] = []
    unsure: list[Finding] = []
    for index, entry in enumerate(reversed(history_newest_first), start=1):
        step = parse_step(index, entry.get("CreatedBy", "") or "")
        if step.instruction == "VOLUME":
            for path in volume_paths(step.argument):
                path = posixpath.normpath(resolve(expand(path, env) or path, cwd))
                if path not in declared:
                    declared.append(path)
        elif step.instruction == "ENV":
            env.update({k: expand(v, env) or v for k, v in env_pairs(step.argument).items()})
        elif step.instruction == "WORKDIR":
            cwd = resolve(expand(step.argument, env) or step.argument, cwd)
        elif not declared:
            continue
        elif step.instruction in ("COPY", "ADD"):
            _judge_copy(step, cwd, env, declared, findings, unsure)
        elif step.instruction == "RUN":
            _judge_run(step, cwd, env, declared, findings, unsure)
        elif step.instruction == "UNKNOWN":
            unsure.append(Finding(index, step.text, ", ".join(declared), "cannot_tell", "no build record"))
    return ImageReport(
        image=image, volumes=sorted(volumes or declared), findings=findings, cannot_tell=unsure
    )


def _judge_copy(step: Step, cwd: str, env: dict[str, str], declared: list[str], findings, unsure) -> None:
    raw = copy_destination(step.argument)
    dest = expand(raw, env) if raw else None
    if dest is None:
        unsure.append(
            Finding(step.number, step.text, ", ".join(declared), "cannot_tell", "destination unknown")
        )
        return
    dest = resolve(dest, cwd)
    volume = inside(dest, declared)
    if volume is not None:
        findings.append(Finding(step.number, step.text, volume, "copy", dest))
    elif concerns(dest, declared):
        holds = [v for v in declared if concerns(dest, [v])]
        unsure.append(
            Finding(
                step.number,
                step.text,
                ", ".join(holds),
                "cannot_tell",
                f"copies into {dest}, above the volume",
            )
        )


def _judge_run(step: Step, cwd: str, env: dict[str, str], declared: list[str], findings, unsure) -> None:
    scope = {**env, **step.build_args}
    script = step.argument
    verdict = shell_writes(script if step.shell else _exec_as_script(script), cwd, scope, declared)
    for path in verdict.writes:
        volume = inside(path, declared)
        if volume is not None:
            findings.append(Finding(step.number, step.text, volume, "run", path))
        elif concerns(path, declared):  # `chown -R app /`: above the volume, it may reach into it
            unsure.append(
                Finding(step.number, step.text, ", ".join(declared), "cannot_tell", f"writes {path}")
            )
    for why in verdict.unsure:
        unsure.append(Finding(step.number, step.text, ", ".join(declared), "cannot_tell", why))


def _exec_as_script(words: str) -> str:
    """An exec-form RUN (`["touch", "/x"]`, recorded as `touch /x`) runs no shell: no operators, no
    variables. Quote each word so the shell reading sees the same words."""
    return " ".join("'" + w.replace("'", "'\\''") + "'" for w in words.split())


def check_image(client: Any, image_ref: str) -> ImageReport:
    """Raises engine.EngineError when the engine has no such image (never pulled)."""
    image = local_image(client, image_ref)
    volumes = sorted(((image.attrs.get("Config") or {}).get("Volumes") or {}).keys())
    return check_history(image_ref, volumes, image.history())
