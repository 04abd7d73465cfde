"""Which paths a build's `RUN` command writes, read from its shell text the way the shell would.

Only what is certain is called a write: a redirection (`> f`, `>> f`), or a command that exists to
change files (`touch`, `mkdir`, `cp`/`mv`/`ln`/`install` to their destination, `rm`, `chmod`, `chown`,
`sed -i`, `tee`, `tar -x`, `dd of=`...). A command that only reads (`ls`, `cat`, `grep`, `test`...)
writes nothing but what it is redirected into. Any other command that names a path, or runs in a
working directory, we are asked about cannot be read from its text (`sh setup.sh`, `make install`):
it is reported as "cannot tell", never guessed either way. Paths are resolved as the shell would:
`$VAR`/`${VAR}` from the ENV and build args in force, relative paths against WORKDIR and `cd`.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass

READ_ONLY = frozenset(
    "ls cat test [ [[ stat grep egrep fgrep head tail wc du echo printf true false id whoami pwd file "
    "readlink realpath which type sort uniq diff cmp md5sum sha1sum sha256sum sha512sum exit set export "
    "df env hostname date sleep uname basename dirname nproc getent less more od hexdump xxd strings "
    ":".split()
)
# command -> how its arguments are written: "all" (every path argument), "last" (the destination)
WRITERS = {
    "touch": "all", "mkdir": "all", "rm": "all", "rmdir": "all", "truncate": "all", "mkfifo": "all",
    "mknod": "all", "tee": "all", "chmod": "after_first", "chown": "after_first", "chgrp": "after_first",
    "cp": "last", "mv": "all", "ln": "last", "install": "last", "rsync": "last", "unlink": "all",
    "shred": "all",
}  # fmt: skip
_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "\n", ";;"}
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True, slots=True)
class Verdict:
    writes: list[str]  # absolute paths written for certain
    unsure: list[str]  # why some command's writes cannot be told from its text


def expand(word: str, env: dict[str, str]) -> str | None:
    """`word` with $VAR and ${VAR} replaced; None when it uses a variable we do not know."""
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1) or match.group(2)
        if name not in env:
            missing = True
            return ""
        return env[name]

    expanded = _VAR.sub(value, word)
    return None if missing or "$" in expanded else expanded


def resolve(path: str, cwd: str) -> str:
    return posixpath.normpath(posixpath.join(cwd, path))


def _words(script: str) -> list[str] | None:
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace = " \t\r"  # newlines separate commands
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: not a script we can read
        return None


def _commands(words: list[str]) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    for word in words:
        if word in _SEPARATORS or word.startswith(("&&", "||", ";")):
            commands.append([])
        else:
            commands[-1].append(word)
    return [c for c in commands if c]


def shell_writes(script: str, cwd: str, env: dict[str, str], watched: list[str]) -> Verdict:
    """The paths `script` (a `sh -c` text) writes, and the commands whose writes we cannot tell, as far
    as they concern `watched` (directories; a command unrelated to them is not our business)."""
    words = _words(script)
    if words is None:
        return Verdict([], [f"cannot parse {script!r}"])
    writes: list[str] = []
    unsure: list[str] = []
    env = dict(env)
    for command in _commands(words):
        cwd = _one_command(command, cwd, env, watched, writes, unsure)
    return Verdict(writes, unsure)


def inside(path: str, watched: list[str]) -> str | None:
    """The watched directory `path` is in (or is), else None."""
    return next((w for w in watched if path == w or path.startswith(w.rstrip("/") + "/")), None)


def concerns(path: str, watched: list[str]) -> bool:
    """`path` is in, or contains, a watched directory."""
    return any(
        path == w or path.startswith(w.rstrip("/") + "/") or w.startswith(path.rstrip("/") + "/")
        for w in watched
    )


def _one_command(
    command: list[str],
    cwd: str,
    env: dict[str, str],
    watched: list[str],
    writes: list[str],
    unsure: list[str],
) -> str:
    """Analyse one simple command; returns the working directory after it (`cd`)."""
    args: list[str] = []
    i = 0
    while i < len(command):  # redirections first: `> f`, `>> f`, `2> f`; `>&` and `<` write nothing
        word = command[i]
        if word in (">", ">>", ">|") and i + 1 < len(command):
            target = expand(command[i + 1], env)
            if target is None:
                unsure.append(f"redirection to {command[i + 1]}")
            elif target != "/dev/null" and not target.startswith("&"):
                writes.append(resolve(target, cwd))
            i += 2
            continue
        if word in ("<", ">&", "<&", "&>") or word.startswith(("<", ">&")):
            i += 2 if word in ("<", ">&", "<&", "&>") else 1
            continue
        if word.isdigit() and i + 1 < len(command) and command[i + 1].startswith((">", "<")):
            i += 1  # the fd number of `2> f`
            continue
        args.append(word)
        i += 1
    while args and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", args[0]):  # X=/data cmd ...
        key, _, value = args.pop(0).partition("=")
        env[key] = expand(value, env) or ""
    while args and args[0] in ("busybox", "sudo", "exec", "command", "nice", "nohup", "time"):
        args.pop(0)
    if not args:
        return cwd
    name = posixpath.basename(args[0])
    operands = [a for a in args[1:] if not a.startswith("-")]
    if name == "cd":
        target = expand(operands[0], env) if operands else "/root"
        return resolve(target, cwd) if target is not None else cwd
    paths = [(a, expand(a, env)) for a in operands]
    if name in READ_ONLY:
        return cwd
    if name == "find":
        if not any(a in ("-delete", "-exec", "-execdir", "-fprint", "-fprintf", "-fls") for a in args):
            return cwd
    mode = WRITERS.get(name)
    if name == "sed":
        mode = "all_but_script" if any(a.startswith("-i") or a == "--in-place" for a in args[1:]) else None
        if mode is None:
            return cwd
    if name == "dd":
        for a in args[1:]:
            if a.startswith("of="):
                target = expand(a[3:], env)
                if target is None:
                    unsure.append(f"dd {a}")
                else:
                    writes.append(resolve(target, cwd))
        return cwd
    if mode is not None:
        if mode == "last":
            paths = paths[-1:]
        elif mode in ("after_first", "all_but_script"):
            paths = paths[1:]
        for raw, path in paths:
            if path is None:
                unsure.append(f"{name} {raw} (unknown variable)")
            else:
                writes.append(resolve(path, cwd))
        return cwd
    # A command we cannot read: it matters when it names a watched path or runs inside one.
    named = [resolve(p, cwd) for _, p in paths if p is not None and (p.startswith("/") or "/" in p)]
    if any(concerns(p, watched) for p in named) or inside(cwd, watched) is not None:
        unsure.append(" ".join(args))
    return cwd
