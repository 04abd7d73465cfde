"""A tiny local image for container tests: static busybox in an otherwise empty rootfs.

There is no image registry here, so tests that only need "some container" use this image, imported
with `docker import` from Debian's busybox-static binary (a second or two, no download).
"""

from __future__ import annotations

import io
import shutil
import tarfile

BUSYBOX_IMAGE = "logsidecar-test-busybox:latest"
APPLETS = ("sh", "true", "sleep", "echo", "cat", "mkdir", "ls", "tail", "printf", "rm", "mv", "touch")


def ensure_busybox_image(client) -> str:
    """Import the busybox image once per engine; returns its reference."""
    try:
        client.images.get(BUSYBOX_IMAGE)
        return BUSYBOX_IMAGE
    except Exception:  # noqa: BLE001 - not there yet
        pass
    binary = shutil.which("busybox") or "/bin/busybox"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for directory in ("bin", "tmp", "var", "var/log", "etc"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(binary, arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
    client.api.import_image_from_data(
        buf.getvalue(),
        repository=BUSYBOX_IMAGE.split(":")[0],
        tag="latest",
        changes=["ENV PATH=/bin", 'CMD ["sh"]'],
    )
    return BUSYBOX_IMAGE
