"""A Docker engine of the test's own, and the images the stage builds on it.

:class:`DockerEngine` starts ``dockerd`` (Debian's docker.io) with its data root, exec root,
socket and pid file in a temporary folder and the vfs storage driver (no overlay mounts to
leave behind), no bridge and no iptables rules (every container of the stage shares the host's
network), and stops it by its PID. It touches no other engine of the machine: every command it
runs names its own socket.

The images: :func:`base_rootfs` makes the Debian base with debootstrap (Python 3.11 from apt) and
keeps its tarball under ``~/.cache/wisata-docker``; :meth:`DockerEngine.cached_build` builds an
image and keeps it there as a ``docker save`` archive, both keyed by a hash of everything that
goes into them, so a later run loads what did not change instead of building it. Archives, not a
data root kept across runs: a data root is the engine's private state and only one engine may use
it, while an archive is read by any number of runs at once, and each run starts from a clean
engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.processes import stop_process

__all__ = [
    "CACHE",
    "BuildReport",
    "DockerEngine",
    "EngineUnavailable",
    "base_rootfs",
    "debian_mirror",
    "fingerprint",
]

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wisata-docker"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
# CAs the machine trusts on top of Debian's (a proxy's, say): the base trusts them too, so that
# builds reach the package indexes the machine reaches.
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
SCRATCH_SIZE = "64G"  # sparse: only what the engine writes takes room
# A build that failed on one of these reached no package index (a DNS or connection blip, seen
# once in a CI run: "Temporary failure in name resolution" for files.pythonhosted.org): it is
# run again, resuming from the layers that finished. Any other failure fails at once.
NETWORK_FAILURES = (
    "Temporary failure in name resolution",
    "Max retries exceeded",
    "Connection reset by peer",
    "Read timed out",
)
BUILD_ATTEMPTS = 3


class EngineUnavailable(Exception):
    """dockerd cannot run here; the message says why."""


@dataclass(frozen=True)
class BuildReport:
    """How an image came to be: built (and how long it took) or loaded from the cache."""

    tag: str
    cached: bool
    seconds: float
    size: int


def docker_cli() -> str | None:
    """The docker client of Debian's docker.io, else any on PATH.

    Debian's client speaks the engine's API version and builds with BuildKit by itself; a newer
    client elsewhere on PATH wants the buildx plugin for that.
    """
    debian = Path("/usr/bin/docker")
    return str(debian) if debian.exists() else shutil.which("docker")


def fingerprint(parts: Iterable[str | Path], root: Path) -> str:
    """A sha256 of strings and of files' names and contents (folders walked, caches skipped)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            digest.update(b"s" + part.encode() + b"\0")
            continue
        files = sorted(part.rglob("*")) if part.is_dir() else [part]
        for path in files:
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(b"f" + str(path.relative_to(root)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def debian_mirror() -> str:
    """The Debian archive the machine's apt uses (the security archive aside)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        with contextlib.suppress(OSError):
            text = path.read_text()
            for url in re.findall(r"(?:^URIs:|^deb)\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M):
                if url.rstrip("/").endswith("/debian"):
                    return url
    return "http://deb.debian.org/debian"


def _local_cas() -> list[Path]:
    return sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []


def base_key() -> str:
    """The hash naming the base image: its recipe, the mirror and the CAs it trusts."""
    recipe = [SUITE, "minbase", ",".join(BASE_PACKAGES), debian_mirror(), "clean-apt-lists"]
    return fingerprint([*recipe, *_local_cas()], LOCAL_CAS)


def base_rootfs(workdir: Path) -> tuple[Path, bool, float]:
    """The base's root filesystem as a tarball, from the cache or made now.

    Returns the tarball, whether it came from the cache, and the seconds spent making it.
    """
    key = base_key()[:16]
    tarball = CACHE / f"base-{SUITE}-{key}.tar"
    if tarball.exists():
        return tarball, True, 0.0
    started = time.monotonic()
    root = workdir / "rootfs"
    command = ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
               SUITE, str(root), debian_mirror()]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr}")
    # What apt fetched while bootstrapping is of no use in an image.
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (root / junk).glob("*"):
            if path.is_file():
                path.unlink()
    for ca in _local_cas():
        shutil.copy2(ca, root / "usr/local/share/ca-certificates" / ca.name)
    if _local_cas():
        subprocess.run(["chroot", str(root), "update-ca-certificates"], check=True,
                       capture_output=True, timeout=120)  # fmt: skip
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_name(f"{tarball.name}.{os.getpid()}.partial")
    subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True, timeout=600)
    partial.replace(tarball)
    _prune(tarball, f"base-{SUITE}-{'?' * 16}.tar")
    shutil.rmtree(root, ignore_errors=True)
    return tarball, False, time.monotonic() - started


def _prune(keep: Path, pattern: str) -> None:
    """Remove the cache's other files of ``pattern`` (one of each kind is kept), and the
    partial files of runs that were stopped halfway, once they are a day old."""
    stale = [old for old in CACHE.glob(pattern) if old != keep]
    day_ago = time.time() - 24 * 3600
    stale += [p for p in CACHE.glob("*.partial") if p.stat().st_mtime < day_ago]
    for old in stale:
        with contextlib.suppress(OSError):
            old.unlink()


class DockerEngine:
    """``dockerd`` with everything it keeps in a temporary folder, stopped by its PID."""

    def __init__(self) -> None:
        self.dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        self.cli = docker_cli()
        self.root = Path(tempfile.mkdtemp(prefix="wisata-docker-"))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self._log_path = self.root / "dockerd.log"
        self.cgroup_parent = f"/{self.root.name}"
        self.stop_timings: dict[str, float] = {}
        self.scratch: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # --- life -----------------------------------------------------------------------------------

    def _mount_scratch(self) -> None:
        """Put the data root on a file system of its own, in a sparse file of the folder.

        vfs writes a full copy of an image's files for every layer and every container (two per
        container), hundreds of thousands of files a run; removing them one by one takes
        minutes on a busy disk (this machine's is mounted with online discard). Unmounting a
        scratch file system and deleting its one file takes seconds. Where loop devices cannot
        be had, the data root is a plain folder.
        """
        image, data = self.root / "scratch.ext4", self.root / "data"
        data.mkdir()
        commands = [
            ["truncate", "--size", SCRATCH_SIZE, str(image)],
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-E",
                "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
                str(image),
            ],
            ["mount", "-o", "loop,noatime", str(image), str(data)],
        ]
        for command in commands:
            if subprocess.run(command, capture_output=True, check=False, timeout=120).returncode:
                image.unlink(missing_ok=True)
                return
        self.scratch = data

    def start(self) -> None:
        """Start dockerd and wait until it answers; :class:`EngineUnavailable` if it cannot."""
        if self.cli is None or not Path(self.dockerd).exists():
            raise EngineUnavailable(
                "Docker is not installed and tests/docker/install_docker.sh could not install "
                "it (docker.io from apt needs apt-get and root or password-less sudo)"
            )
        if os.geteuid() != 0:
            raise EngineUnavailable(
                "dockerd needs root privileges, and the tests do not run as root"
            )
        self._mount_scratch()
        command = [
            self.dockerd,
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'dockerd.pid'}",
            f"--host={self.host}",
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip-masq=false",
            "--bridge=none",
            f"--cgroup-parent={self.cgroup_parent}",
        ]
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                reason = self._why_not()
                self.stop()
                raise EngineUnavailable(reason)
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        log = self.log()
        self.stop()
        raise RuntimeError(f"dockerd did not answer within {START_TIMEOUT} s:\n{log[-3000:]}")

    def _why_not(self) -> str:
        log = self.log()
        last = "\n".join(log.strip().splitlines()[-5:])
        if re.search(r"cgroup", log, re.I):
            cause = "no usable cgroups"
        elif re.search(r"operation not permitted|permission denied", log, re.I):
            cause = "not enough privileges (a container without CAP_SYS_ADMIN?)"
        else:
            cause = "it exited"
        return f"dockerd could not start: {cause}; its last lines:\n{last}"

    def stop(self) -> None:
        """Stop dockerd by its PID (SIGTERM, then SIGKILL), then free its folder."""
        started = time.monotonic()
        process, self._process = self._process, None
        stop_process(process, signal.SIGTERM, STOP_TIMEOUT)
        self._kill_leftovers()
        self._unmount()
        removing = time.monotonic()
        self.stop_timings = {"dockerd": round(removing - started, 1)}
        # Without the scratch file system, hundreds of thousands of files: rm is faster at it
        # than shutil.rmtree.
        subprocess.run(
            ["rm", "-rf", "--one-file-system", str(self.root)], check=False, timeout=1800
        )
        self.stop_timings["remove"] = round(time.monotonic() - removing, 1)
        # The cgroups of its containers are gone with them; what is left under its own parent
        # (BuildKit's, say) is empty now.
        for parent in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent.lstrip('/')}"):
            for group in sorted(parent.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if group.is_dir():
                    with contextlib.suppress(OSError):
                        group.rmdir()
            with contextlib.suppress(OSError):
                parent.rmdir()

    def _kill_leftovers(self) -> None:
        # containerd and its shims run with this engine's folder on their command line: any
        # still there once dockerd is gone are this engine's, and no one else's.
        marker = str(self.root).encode()
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError, ValueError):
                if marker in (proc / "cmdline").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)

    def _unmount(self) -> None:
        if self.scratch is not None:
            # Lazily, in case a process of the engine still holds it: it goes once they do.
            subprocess.run(["umount", "--detach-loop", "-l", str(self.scratch)],
                           check=False, capture_output=True, timeout=120)  # fmt: skip
            self.scratch = None
        with contextlib.suppress(OSError):
            mounts = [
                line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            ]
            for point in sorted((m for m in mounts if m.startswith(str(self.root))), reverse=True):
                subprocess.run(["umount", "-l", point], check=False, capture_output=True)

    def log(self) -> str:
        """What dockerd wrote."""
        try:
            return self._log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- commands -------------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """A clean environment naming this engine alone (nothing of the test process's own)."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "DOCKER_HOST": self.host,
            "DOCKER_BUILDKIT": "1",
            "DOCKER_CONFIG": str(self.root / "client"),
        }

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 600,
        stdin: int | None = subprocess.DEVNULL,
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker client on this engine; raise with its output when ``check`` fails."""
        assert self.cli is not None
        return run(
            [self.cli, *args], env=self.environment(), check=check, timeout=timeout, stdin=stdin
        )

    def image_size(self, tag: str) -> int:
        """The image's size in bytes."""
        return int(self.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())

    def import_rootfs(self, tarball: Path, tag: str) -> None:
        """``docker import`` a root filesystem tarball as ``tag``."""
        self.docker("import", str(tarball), tag, timeout=900)

    def cached_build(
        self,
        tag: str,
        dockerfile: Path,
        context: Path,
        *,
        inputs: Sequence[str | Path],
        build_args: Mapping[str, str] | None = None,
    ) -> BuildReport:
        """Load ``tag`` from the cache if its inputs are unchanged, else build and save it.

        ``inputs``: everything the build reads (the Dockerfile and its ignore file are added),
        and strings such as the base image's key. The build has the host's network (no bridge
        here) to reach the package indexes.
        """
        args = dict(build_args or {})
        ignore = dockerfile.with_name(f"{dockerfile.name}.dockerignore")
        parts = [*inputs, dockerfile, *([ignore] if ignore.exists() else []),
                 *(f"{name}={value}" for name, value in sorted(args.items()))]  # fmt: skip
        name = tag.partition(":")[0]
        archive = CACHE / f"{name}-{fingerprint(parts, context)[:16]}.tar"
        started = time.monotonic()
        if archive.exists():
            self.docker("load", "--quiet", "--input", str(archive), timeout=900)
            return BuildReport(tag, True, time.monotonic() - started, self.image_size(tag))
        command = ["build", "--network=host", "--file", str(dockerfile), "--tag", tag]
        for key, value in args.items():
            command += ["--build-arg", f"{key}={value}"]
        for attempt in range(1, BUILD_ATTEMPTS + 1):
            try:
                self.docker(*command, str(context), timeout=1800)
                break
            except RuntimeError as failed:
                if attempt == BUILD_ATTEMPTS or not any(
                    blip in str(failed) for blip in NETWORK_FAILURES
                ):
                    raise
                time.sleep(15 * attempt)
        seconds = time.monotonic() - started
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
        self.docker("save", "--output", str(partial), tag, timeout=900)
        partial.replace(archive)
        _prune(archive, f"{name}-{'?' * 16}.tar")
        return BuildReport(tag, False, seconds, self.image_size(tag))


def run(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    check: bool = True,
    timeout: float = 600,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    """Run ``command``, its output captured; raise with that output when ``check`` fails."""
    done = subprocess.run(
        list(command),
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=stdin,
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {done.returncode}:\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done
