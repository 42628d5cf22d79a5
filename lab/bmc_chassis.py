"""The chassis_control program of the lab's BMCs (lab/bmc.py), run by ipmi_sim as
`python -m lab.bmc_chassis LAB NODE get power` or `... set power 0|1`, `set reset 1`.

ipmi_sim is single-threaded and waits for this program before it answers anything, so
it must be quick: `get power` reads the lab's state file and /proc only (no lab.core);
an off is done at once (a SIGKILL, well under a second), while an on or a reset, which
boots the node, runs detached (`--background on|reset`) and the power reads "on" once
the node runs. Protocol: `get` prints `power:0|1` for each asked parameter; `set`
prints nothing on success; errors go to stdout (ipmi_sim logs them) with exit 1.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time

from lab import state
from lab.node import is_running


def powered(lab_name: str, node: str) -> bool:
    st = state.load(lab_name)
    rt = st.runtime.get(node) if st is not None else None
    return rt is not None and is_running(rt.pid, rt.pid_start)


def _background(lab_name: str, node: str, what: str) -> None:
    log = state.lab_dir(lab_name) / "bmc" / node / "chassis.log"
    with log.open("ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "lab.bmc_chassis", "--background", what, lab_name, node],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip


def _trace(args: list[str], code: int, output: str) -> None:
    """One line per request in the BMC's chassis.log, to follow what a fence did."""
    log = state.lab_dir(args[0]) / "bmc" / args[1] / "chassis.log"
    with contextlib.suppress(OSError), log.open("a") as out:
        out.write(f"{time.strftime('%H:%M:%S')} {' '.join(args[2:])} -> {code} {output.strip()}\n")


def _power_off(lab_name: str, node: str) -> None:
    from lab.core import Lab

    Lab.attach(lab_name).power_off(node)


def chassis(lab_name: str, node: str, args: list[str]) -> int:
    if not args or args[0] not in ("get", "set"):
        print(f"chassis: expected get or set, got {' '.join(args) or 'nothing'}")
        return 1
    op, rest = args[0], args[1:]
    if op == "get":
        for parm in rest:
            if parm == "power":
                print(f"power:{1 if powered(lab_name, node) else 0}")
            elif parm == "boot":
                print("boot:default")
            else:
                print(f"chassis: cannot get {parm}")
                return 1
        return 0
    for parm, value in zip(rest[::2], rest[1::2], strict=False):
        if parm == "power" and value == "0":
            _power_off(lab_name, node)
        elif parm == "power":
            _background(lab_name, node, "on")
        elif parm == "reset" and value != "0":
            _background(lab_name, node, "reset")
        elif parm == "shutdown" and value != "0":
            _power_off(lab_name, node)  # a lab node has no ACPI: a soft off is an off
        # boot device, identify: nothing to do in a lab
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["--background"] and len(args) == 4:
            from lab.core import Lab

            what, lab_name, node = args[1:]
            lab = Lab.attach(lab_name)
            if what == "on":
                lab.power_on(node)
            else:
                lab.reboot(node)
            return 0
        if len(args) >= 2:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = chassis(args[0], args[1], args[2:])
            print(out.getvalue(), end="")
            _trace(args, code, out.getvalue())
            return code
    except Exception as exc:  # ipmi_sim shows our stdout; a traceback helps nobody there
        print(f"lab bmc_chassis {' '.join(args)}: {type(exc).__name__}: {exc}")
        return 1
    print("usage: python -m lab.bmc_chassis LAB NODE get|set ... | --background on|reset LAB NODE")
    return 2


if __name__ == "__main__":
    sys.exit(main())
