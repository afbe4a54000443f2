"""A Debian 12 machine booted with a real systemd as PID 1, for tests: ``systemd-nspawn -b``.

The root file system is made once by ``debootstrap`` and cached under
``${EDGEKNN_TEST_CACHE:-~/.cache/edgeknn-test}/nspawn-bookworm-<version>/``
(built in a temporary directory beside it and renamed into place, so a run
that is killed leaves no half-made cache).  Each test module boots its own
copy of it.  The copy shares the host's network namespace, as a Pi on the
LAN would share its network with the controller: its sshd listens on a free
loopback port and Ansible reaches it over ssh like any device, and the
service inside reaches the test's mosquitto on 127.0.0.1.

What this machine needed (systemd 252 both sides, a hybrid cgroup host
whose PID 1 is not systemd):

* ``--register=no --keep-unit``: there is no systemd-machined or bus on the
  host to register with or to ask for a scope;
* ``SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1``: the container gets a cgroup v2
  tree, where ``DevicePolicy=``/``DeviceAllow=`` are BPF programs;
* ``--system-call-filter=bpf``: nspawn's seccomp filter refuses ``bpf()``,
  and without it systemd inside cannot apply a device policy.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from edgeknn.tools.devbroker import free_port

SUITE = "bookworm"
MIRROR = os.environ.get("EDGEKNN_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What a fresh Raspberry Pi OS Lite / Debian 12 image has that the role relies
# on, and the ssh server Ansible uses.  Packages the role installs itself
# (python3-venv, python3-pip) are left out, so the first run installs them.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt",
            "sudo", "iproute2", "procps", "ca-certificates")
# Bump when the steps below change; the package list is part of the key.
BUILD_STEPS = "2"
TOOLS = ("debootstrap", "systemd-nspawn", "ssh", "ssh-keygen")


def cache_root() -> Path:
    return Path(os.environ.get("EDGEKNN_TEST_CACHE") or Path.home() / ".cache" / "edgeknn-test")


def version() -> str:
    key = "\n".join((SUITE, MIRROR, BUILD_STEPS, *PACKAGES)).encode()
    return f"{SUITE}-{hashlib.sha256(key).hexdigest()[:12]}"


def why_not_here() -> str | None:
    """Why no container can be booted on this machine, or None if one can."""
    if os.geteuid() != 0:
        return "systemd-nspawn and debootstrap need root"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (./dev.sh installs debootstrap, systemd-container)"
    if not Path("/sys/fs/cgroup").is_dir():
        return "no cgroup file system at /sys/fs/cgroup"
    return None


def _prune(prefix: str, keep: Path, older_than: float = 86400.0) -> None:
    """Remove the cache's other versions of one thing, once a day old: a new key makes
    them dead weight, but another checkout's run may still be using one."""
    for old in keep.parent.glob(f"{prefix}*"):
        try:
            stale = time.time() - old.stat().st_mtime > older_than
        except OSError:
            continue
        if old != keep and not old.name.startswith(".") and stale:
            shutil.rmtree(old, ignore_errors=True)


def ensure_rootfs() -> Path:
    """The cached root file system, made by debootstrap if it is not there yet (~3 min)."""
    final = cache_root() / f"nspawn-{version()}"
    if (final / "rootfs" / "usr" / "bin" / "python3").exists():
        return final / "rootfs"
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".nspawn-{version()}-", dir=final.parent))
    try:
        rootfs = work / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), MIRROR],
            check=True, capture_output=True, text=True, timeout=1800,
        )
        # A device does not run apt's timers in the middle of a test.
        for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
            link = rootfs / "etc/systemd/system/timers.target.wants" / timer
            link.unlink(missing_ok=True)
        (rootfs / "etc/hostname").write_text("edgeknn-nspawn\n")
        (rootfs / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 edgeknn-nspawn\n")
        try:
            work.rename(final)
        except OSError:  # another run made it first
            if not (final / "rootfs" / "usr" / "bin" / "python3").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune("nspawn-bookworm-", final)
    _prune("nspawn-apt-archives-", apt_archives())
    return final / "rootfs"


def apt_archives() -> Path:
    """Where the containers' apt keeps the .debs it downloads, so the next run downloads none."""
    path = cache_root() / f"nspawn-apt-archives-{version()}"
    (path / "partial").mkdir(parents=True, exist_ok=True)
    return path


def ensure_wheelhouse(source: Path, requirements: Sequence[str]) -> Path:
    """Wheels for everything ``source`` (a checkout) needs with ``requirements``, for a
    ``pip install --no-index --find-links`` inside the container, cached by what they are for.

    Downloaded here, with this machine's pip settings (its index and CA
    certificates, which a fresh container does not have), for the same
    Python 3.11 and architecture as the container's.
    """
    key = hashlib.sha256("\n".join([(source / "pyproject.toml").read_text(), *requirements]).encode())
    final = cache_root() / f"nspawn-wheels-{key.hexdigest()[:12]}"
    if (final / ".complete").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".nspawn-wheels-", dir=final.parent))
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                        "--dest", str(work), *requirements], check=True, capture_output=True, text=True,
                       timeout=1200, cwd=source)
        for own in work.glob("edgeknn-*"):
            own.unlink()
        (work / ".complete").touch()
        try:
            work.rename(final)
        except OSError:
            if not (final / ".complete").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune("nspawn-wheels-", final)
    return final


def _first_child(pid: int) -> int | None:
    """The first child of process ``pid`` (nspawn's: the container's PID 1), if any."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


class Machine:
    """A booted copy of the cached root file system; use as a context manager."""

    def __init__(self, workdir: Path, *, binds: Sequence[tuple[Path, str]] = (),
                 binds_ro: Sequence[tuple[Path, str]] = (), name: str = "edgeknn-nspawn"):
        self.workdir = workdir
        self.root = workdir / "root"
        self.name = name
        self.ssh_port = free_port()
        self.key = workdir / "id_ed25519"
        self.console = workdir / "console.log"
        self._binds = list(binds)
        self._binds_ro = list(binds_ro)
        self._process: subprocess.Popen[bytes] | None = None

    # ----- life cycle --------------------------------------------------------

    def __enter__(self) -> Machine:
        self.prepare()
        self.boot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def prepare(self) -> None:
        """Copy the cached root file system (``self.root``: put files in it before :meth:`boot`)."""
        rootfs = ensure_rootfs()
        subprocess.run(["cp", "-a", "--reflink=auto", str(rootfs), str(self.root)], check=True, timeout=600)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        ssh_dir = self.root / "root" / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text((self.key.with_suffix(".pub")).read_text())
        (self.root / "etc/ssh/sshd_config.d/edgeknn-test.conf").write_text(
            f"Port {self.ssh_port}\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nUseDNS no\n")

    def boot(self, timeout: float = 90.0) -> None:
        """Start systemd in the copy and wait until it has finished booting."""
        if not self.root.exists():
            self.prepare()
        argv = ["systemd-nspawn", "--boot", "--directory", str(self.root), "--machine", self.name,
                "--register=no", "--keep-unit", "--console=read-only", "--system-call-filter=bpf"]
        argv += [f"--bind={host}:{inside}" for host, inside in self._binds]
        argv += [f"--bind-ro={host}:{inside}" for host, inside in self._binds_ro]
        env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
        with self.console.open("wb") as out:
            self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                             env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with {self._process.returncode}:\n{self.console_tail()}")
            probe = self.run("systemctl is-system-running --wait", check=False, timeout=60)
            if probe.stdout.strip() in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the container did not boot within {timeout:g} s:\n{self.console_tail()}")
            time.sleep(1)

    def shutdown(self, timeout: float = 60.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            # The copy is thrown away, so no orderly power-off: SIGKILL to the
            # container's PID 1, from outside its PID namespace, ends every process
            # in it at once, and nspawn then unmounts and exits.
            init = _first_child(process.pid)
            if init is not None:
                os.kill(init, signal.SIGKILL)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)

    def console_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.console.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ----- inside ----------------------------------------------------------------

    def ssh_argv(self) -> list[str]:
        return ["ssh", "-i", str(self.key), "-p", str(self.ssh_port), *self.ssh_options(), "root@127.0.0.1"]

    @staticmethod
    def ssh_options() -> list[str]:
        return ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"]

    def run(self, command: str | Sequence[str], *, check: bool = True,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """A shell command inside, as root, over ssh."""
        line = command if isinstance(command, str) else shlex.join(command)
        try:
            done = subprocess.run([*self.ssh_argv(), line], capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"{line!r} did not finish within {timeout:g} s") from exc
        if check and done.returncode != 0:
            raise AssertionError(f"{line!r} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def inventory_line(self, host: str) -> str:
        return (f"{host} ansible_host=127.0.0.1 ansible_port={self.ssh_port} ansible_user=root "
                f"ansible_ssh_private_key_file={self.key} ansible_python_interpreter=/usr/bin/python3 "
                f"ansible_ssh_common_args='{' '.join(self.ssh_options())}'")
