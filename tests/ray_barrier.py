"""Installed in every Ray worker process of the two-node test: any file access under the run's
``--out`` fails, except from the depot (benchlab.depot.Depot), which keeps ``OUT/cache``."""

import os
import sys

PATH_EVENTS = {"open": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.replace": (0, 1), "os.remove": (0,),
               "os.listdir": (0,), "os.scandir": (0,), "os.rmdir": (0,), "shutil.copyfile": (0, 1)}


def _from_depot() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_qualname.startswith("Depot."):
            return True
        frame = frame.f_back
    return False


def install() -> None:
    barred = os.path.realpath(os.environ["BENCHLAB_TEST_BARRED"])

    def hook(event, args):
        for index in PATH_EVENTS.get(event, ()):
            target = args[index] if len(args) > index else None
            if not isinstance(target, (str, bytes, os.PathLike)):
                continue
            path = os.path.realpath(os.fsdecode(target))
            if (path == barred or path.startswith(barred + os.sep)) and not _from_depot():
                with open(os.environ["BENCHLAB_TEST_VIOLATIONS"], "a") as log:  # outside --out
                    log.write(f"{os.getpid()} {event} {path}\n")
                raise PermissionError(f"a Ray worker touched --out: {event} {path}")

    sys.addaudithook(hook)
