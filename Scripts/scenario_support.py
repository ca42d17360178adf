"""What the scenario scripts (capital-safety, data-healing, chaos) share: the owner of a
client order id, the vigil binary of a build, and one ok/FAIL line per check."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def owner(client_order_id):
    """The strategy owning an id: `<owner>.<incarnation>.<session>.<seq>` (Trading.orderOwner)."""
    parts = client_order_id.split(".")
    if len(parts) >= 4 and parts[-3].isdigit():
        return ".".join(parts[:-3]) or None
    return None


def vigil_binary(build, who):
    """`.build/<build>/vigil`, or exit saying how to build it."""
    vigil = f"{ROOT}/.build/{build}/vigil"
    if not os.access(vigil, os.X_OK):
        sys.exit(f"{who}: {vigil} is missing: build it first with `swift build -c {build}`")
    return vigil


class Checks:
    """Prints each check as one `ok`/`FAIL` line and keeps the failures."""

    def __init__(self):
        self.failures = []

    def __call__(self, ok, line):
        print(("ok    " if ok else "FAIL  ") + line, flush=True)
        if not ok:
            self.failures.append(line)
