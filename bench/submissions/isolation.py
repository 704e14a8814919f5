"""Confining a process that runs code we did not write: Landlock, a network namespace, rlimits.

The sandbox worker (``bench.submissions.sandbox_worker``) calls :func:`confine` first thing, before it
imports NumPy or JAX (no threads yet) and long before it runs a submission. What it uses is
what the Linux kernel offers an unprivileged process, no helper binary:

* **Landlock** (Mickaël Salaün, Linux 5.13+; ``Documentation/userspace-api/landlock.rst``): a
  ruleset that handles every filesystem right the kernel's ABI knows, with rules that allow
  *reading* only the Python installation and the import path (the code the worker needs), the
  submission's own directory and a few system directories, and *writing* only the worker's
  private temporary directory (and ``/dev/null``). Everything else, the repository's results,
  the adversarial cache, the dataset and the home directory included, cannot be written, and
  paths outside the allow-list cannot be read. ABI 4+ also refuses TCP ``bind``/``connect``;
  ABI 6+ scopes signals and abstract UNIX sockets to the sandbox. Once applied it cannot be
  lifted, by root either.
* **A network namespace** (``unshare(CLONE_NEWNET)``, in a new user namespace when not root):
  no interface but a down loopback, so no UDP either. Optional: some systems forbid
  unprivileged user namespaces, and Landlock's TCP rule still holds then.
* **rlimits**: total CPU seconds, the size of a file it may write, no core dumps.
  (No address-space limit: XLA reserves far more virtual memory than it uses.)

``no_new_privs`` is set, as Landlock requires, so a setuid binary cannot regain rights.
What was applied is returned as :class:`Confinement` and recorded with the results; when the
kernel has no Landlock, the caller decides (``shieldbench submit`` refuses unless told to trust
the file).

Departure from a container (bubblewrap, nsjail): those are not installed here and need
privileges or a setuid helper; Landlock needs neither, and the kernel enforces it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import resource
import sys
from collections.abc import Iterable

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # same numbers on x86-64 and arm64
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000

# filesystem rights (bit i) and the first ABI that knows each
_FS_RIGHTS = {"execute": (0, 1), "write_file": (1, 1), "read_file": (2, 1), "read_dir": (3, 1),
              "remove_dir": (4, 1), "remove_file": (5, 1), "make_char": (6, 1), "make_dir": (7, 1),
              "make_reg": (8, 1), "make_sock": (9, 1), "make_fifo": (10, 1), "make_block": (11, 1),
              "make_sym": (12, 1), "refer": (13, 2), "truncate": (14, 3), "ioctl_dev": (15, 5)}
_FILE_ONLY = {"execute", "write_file", "read_file", "truncate", "ioctl_dev"}  # rights a rule on a file may hold
_READ = {"execute", "read_file", "read_dir"}
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2  # ABI 4
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2  # ABI 6

SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/opt")
"""System directories the worker may read (shared libraries, CPU information, locale data)."""


@dataclasses.dataclass(frozen=True)
class Confinement:
    """What :func:`confine` applied (recorded with the results of a sandboxed submission)."""

    landlock_abi: int  # 0: none (the kernel has no Landlock)
    network: str  # "namespace", "tcp-denied" (Landlock only) or "open"
    cpu_seconds: int
    readable: tuple[str, ...]  # the allow-list of readable paths
    writable: tuple[str, ...]
    warnings: tuple[str, ...]  # e.g. a protected path that is readable anyway (inside an allowed one)

    @property
    def filesystem(self) -> bool:
        """Whether writes outside ``writable`` are refused by the kernel."""
        return self.landlock_abi > 0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when it has none (or it is disabled)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        r = _libc().syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(int(r), 0)


def _mask(names: Iterable[str], abi: int) -> int:
    return sum(1 << _FS_RIGHTS[n][0] for n in names if _FS_RIGHTS[n][1] <= abi)


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _landlock(read: list[str], write: list[str], abi: int) -> None:
    libc = _libc()
    handled = _mask(_FS_RIGHTS, abi)
    fields = [handled, _NET_BIND_TCP | _NET_CONNECT_TCP, _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL]
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    attr = (ctypes.c_uint64 * 3)(*fields)
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        for paths, rights in ((read, _READ), (write, set(_FS_RIGHTS))):
            for p in paths:
                try:
                    fd = os.open(p, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # a path this system does not have
                try:
                    is_dir = os.path.isdir(p)
                    allowed = _mask(rights if is_dir else rights & _FILE_ONLY, abi)
                    rule = _PathBeneath(allowed, fd)
                    if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
                        raise OSError(ctypes.get_errno(), f"landlock_add_rule({p}): {os.strerror(ctypes.get_errno())}")
                finally:
                    os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)


def _network_namespace() -> bool:
    """Moves this (single-threaded) process into a new network namespace; False if not allowed."""
    libc = _libc()
    flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    if libc.unshare(flags) == 0:
        return True
    if ctypes.get_errno() not in (errno.EPERM, errno.EINVAL, errno.ENOSPC, errno.EUSERS, errno.ENOSYS):
        raise OSError(ctypes.get_errno(), f"unshare: {os.strerror(ctypes.get_errno())}")
    return False


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def confine(read: Iterable[str], write: Iterable[str], protected: Iterable[str], cpu_seconds: int,
            file_bytes: int = 1 << 30) -> Confinement:
    """Confines this process for good (see the module docstring).

    Args:
        read: paths it may read (directories: everything beneath), besides ``SYSTEM_READ`` and
            the Python installation and import path.
        write: paths it may write (its private temporary directory).
        protected: paths that must not be readable (data, caches): a ``read`` directory that
            contains one is narrowed to nothing, and one left readable anyway (inside the import
            path) is reported in ``warnings``.
        cpu_seconds: total CPU time before the kernel kills it.
        file_bytes: the largest file it may write.
    """
    protected = [os.path.realpath(p) for p in protected]
    warnings = []
    wanted = [os.path.realpath(p) for p in read]
    narrowed = []
    for p in wanted:
        hidden = [q for q in protected if _inside(q, p)]
        if hidden:
            warnings.append(f"{p} is not readable: it contains {', '.join(hidden)}")
        else:
            narrowed.append(p)
    code = {os.path.realpath(p) for p in [sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path] if p}
    readable = sorted({*SYSTEM_READ, *code, *narrowed})
    for q in protected:
        for p in readable:
            if _inside(q, p) and p not in SYSTEM_READ:
                warnings.append(f"{q} stays readable: it is inside {p}, which the worker imports code from")
    writable = sorted({os.path.realpath(p) for p in write} | {"/dev/null"})
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    netns = _network_namespace()
    abi = landlock_abi()
    if abi:
        _landlock(readable, writable, abi)
    network = "namespace" if netns else ("tcp-denied" if abi >= 4 else "open")
    return Confinement(abi, network, cpu_seconds, tuple(readable) if abi else (), tuple(writable) if abi else (),
                       tuple(warnings))
