"""A real small disk for tests of a full disk: a tmpfs of a few MB mounted in the test's
directory, that the test fills, then grows (space returns) and finally unmounts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from . import unavailable


class SmallDisk:
    def __init__(self, path: Path, size_mb: int):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._mount(f"size={size_mb}m")

    def _mount(self, options: str, remount: bool = False) -> None:
        argv = ["mount", "-t", "tmpfs", "-o", ("remount," if remount else "") + options, "tmpfs", str(self.path)]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(done.stderr.strip() or f"mount exited {done.returncode}")

    def fill(self, leave: int = 0) -> None:
        """Take every free byte but ``leave`` (once they are gone, the next write fails with ENOSPC)."""
        with open(self.path / "filler", "ab") as f:
            try:
                while (room := self.free_bytes() - leave) > 0:
                    f.write(b"\0" * min(room, 65536))
                    f.flush()
            except OSError:
                pass

    def free(self) -> None:
        """Space returns: the filler goes and the disk grows."""
        (self.path / "filler").unlink(missing_ok=True)
        self._mount("size=256m", remount=True)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path).free

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def small_disk(path: Path, size_mb: int = 16) -> SmallDisk:
    """A mounted tmpfs, or the test fails under CI (it must run there) and is skipped elsewhere."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        reason = "mounting a tmpfs for a full-disk test needs root"
    else:
        try:
            return SmallDisk(path, size_mb)
        except OSError as e:
            reason = f"cannot mount a tmpfs for a full-disk test: {e}"
    unavailable(reason)
