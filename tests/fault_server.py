"""Run one of the real servers with a fault injected, for the reliability tests only.

``python tests/fault_server.py [--bug PATH] [--no-dac-override] MODULE SERVER_ARGS...``

- ``--bug PATH``: ``Responder.respond`` raises ``RuntimeError`` for requests of *PATH* - a bug
  in the server's own code path, past the core's guard, which the server must survive (answer
  500, keep its threads and workers, drain on SIGTERM as usual).
- ``--no-dac-override``: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so the kernel checks
  file modes for this root process as for any user: a file whose owner bits refuse reading
  cannot be opened (root with its capabilities reads anything).

The patch is made before the server module runs, so forked state-group workers inherit it.
"""

from __future__ import annotations

import ctypes
import runpy
import sys

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_dac_override() -> None:
    """capget, clear the two DAC capabilities from the effective and permitted sets, capset."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = _Header(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    mask = ~((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH)) & 0xFFFFFFFF
    data[0].effective &= mask
    data[0].permitted &= mask
    data[0].inheritable &= mask
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def main(argv: list[str]) -> None:
    while argv and argv[0].startswith("--"):
        option, argv = argv[0], argv[1:]
        if option == "--bug":
            inject_bug(argv[0])
            argv = argv[1:]
        elif option == "--no-dac-override":
            drop_dac_override()
        else:
            sys.exit(f"fault_server: unknown option {option}")
    module, *args = argv
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def inject_bug(path: str) -> None:
    from real_servers.core import response

    respond = response.Responder.respond

    def faulty(self, request, loopback=True):
        if request.path == path:
            raise RuntimeError(f"injected fault for {path}")
        return respond(self, request, loopback)

    response.Responder.respond = faulty


if __name__ == "__main__":
    main(sys.argv[1:])
