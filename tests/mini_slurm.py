"""A one-node SLURM cluster for the tests, started from the Debian packages.

``start(root)`` brings up munged, slurmctld and slurmd with every socket, port,
state folder and log under ``root``, so it never touches a system-wide SLURM or
MUNGE. The node line comes from ``slurmd -C`` on the running machine. The
clients (sbatch, squeue, sinfo, scancel) find this cluster through the
``SLURM_CONF`` variable of :attr:`MiniSlurm.env`. ``stop()`` ends the daemons it
started, by PID.

Raises :class:`SlurmUnavailable` (with the reason) when the cluster cannot be
started here: not root, packages missing, or a daemon that does not come up.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")
MUNGE_KEY = Path("/etc/munge/munge.key")


class SlurmUnavailable(RuntimeError):
    """The cluster cannot be started on this machine; the message says why."""


def which(program: str) -> str | None:
    """Full path of a SLURM/MUNGE program; daemons live in sbin, which PATH may lack."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(program, path=path)


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or None when it can be tried."""
    missing = [p for p in PROGRAMS if which(p) is None]
    if missing:
        return f"SLURM/MUNGE programs missing: {', '.join(missing)} (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the test cluster runs slurmd/slurmctld as SlurmUser=root; run the tests as root"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no 'munge' user (the munge package creates it)"
    if not MUNGE_KEY.is_file():
        return f"{MUNGE_KEY} missing (the munge package creates it)"
    return None


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def node_line() -> tuple[str, str]:
    """(node name, ``NodeName=... CPUs=... RealMemory=...``) from ``slurmd -C``."""
    out = subprocess.run([which("slurmd"), "-C"], capture_output=True, text=True, timeout=30, check=True).stdout
    line = next((ln.strip() for ln in out.splitlines() if ln.startswith("NodeName=")), None)
    if line is None:
        raise SlurmUnavailable(f"slurmd -C printed no NodeName line: {out!r}")
    return line.split()[0].split("=", 1)[1], line


@dataclass
class MiniSlurm:
    root: Path
    conf: Path
    node: str
    env: dict[str, str]
    munge_dir: Path | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)

    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([which(cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=timeout,
                              env=self.env)

    def node_state(self) -> str:
        out = self.run("sinfo", "-h", "-N", "-o", "%T")
        return out.stdout.strip() if out.returncode == 0 else f"sinfo failed: {out.stderr.strip()}"

    def known_job_ids(self) -> set[str]:
        """Ids of every job slurmctld still remembers (MinJobAge=300 keeps finished ones)."""
        out = self.run("squeue", "-h", "--states=all", "-o", "%i")
        return set(out.stdout.split())

    def stop(self) -> None:
        """Cancel leftover jobs, then end the daemons this object started (newest first), by PID."""
        if self.processes and self.processes[-1].poll() is None:
            self.run("scancel", "--full", "--user", "root", timeout=10)
        for proc in reversed(self.processes):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        self.processes.clear()
        if self.munge_dir is not None:
            if (self.munge_dir / "munged.log").exists():
                shutil.copy2(self.munge_dir / "munged.log", self.root / "munged.log")
            shutil.rmtree(self.munge_dir, ignore_errors=True)
            self.munge_dir = None

    def log_tail(self, n: int = 2000) -> str:
        parts = []
        for name in ("munged.err", "munged.log", "slurmctld.log", "slurmd.log", "slurmctld.err", "slurmd.err"):
            path = self.root / name
            if name == "munged.log" and self.munge_dir is not None:
                path = self.munge_dir / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-n:]}")
        return "\n".join(parts)


def _spawn(cmd: list[str], err: Path, env: dict, **kwargs) -> subprocess.Popen:
    """Start a daemon in the foreground (so that its PID is the one we hold)."""
    with open(err, "w") as fh:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh, env=env, **kwargs)


def _wait(predicate, timeout: float, what: str, cluster: MiniSlurm) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for proc in cluster.processes:
            if proc.poll() is not None:
                raise SlurmUnavailable(f"{proc.args[0]} exited with {proc.returncode} while waiting for {what}"
                                       f"\n{cluster.log_tail()}")
        if predicate():
            return
        time.sleep(0.2)
    raise SlurmUnavailable(f"timed out after {timeout:.0f} s waiting for {what}\n{cluster.log_tail()}")


def start(root: str | Path, timeout: float = 30) -> MiniSlurm:
    """Start munged, slurmctld and slurmd under ``root``; return once the node is idle."""
    reason = unavailable_reason()
    if reason:
        raise SlurmUnavailable(reason)
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    node, line = node_line()
    # munged runs as the munge user and must reach its folder: put it directly under the
    # system temp dir (pytest's own temp dirs are private to root).
    munge_dir = Path(tempfile.mkdtemp(prefix="dbkmc-munge-"))
    munge = pwd.getpwnam("munge")
    os.chown(munge_dir, munge.pw_uid, munge.pw_gid)
    munge_dir.chmod(0o755)  # munged wants the socket folder searchable by all
    sock = munge_dir / "munge.socket"
    for sub in ("state", "spool"):
        (root / sub).mkdir(exist_ok=True)

    ctld_port, slurmd_port = _free_ports(2)
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=dbkmctest",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={sock}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "SchedulerType=sched/backfill",
        "MpiDefault=none",
        "MinJobAge=300",
        "ReturnToService=2",
        "SlurmdParameters=config_overrides",
        f"{line} NodeAddr=127.0.0.1 State=UNKNOWN",
        f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    # The slurm-jobstep plugin drops every SLURM_* variable, SLURM_CONF included, before
    # the `srun` it runs inside a job. A real cluster's nodes find their config at the
    # standard place (/etc/slurm) or from slurmd (configless); this private cluster's
    # config is only named by SLURM_CONF, so its jobs see an `srun` that sets it again.
    shim = root / "bin" / "srun"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {which("srun")} "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, SLURM_CONF=str(conf), PATH=f"{shim.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for var in [k for k in env if k.startswith("SLURM_") and k != "SLURM_CONF"]:
        del env[var]  # never inherit a surrounding job's context
    cluster = MiniSlurm(root=root, conf=conf, node=node, env=env, munge_dir=munge_dir)
    try:
        cluster.processes.append(_spawn(
            [which("munged"), "--foreground", f"--socket={sock}", f"--pid-file={munge_dir / 'munged.pid'}",
             f"--seed-file={munge_dir / 'munged.seed'}", f"--log-file={munge_dir / 'munged.log'}",
             f"--key-file={MUNGE_KEY}"], root / "munged.err", env, user=munge.pw_uid, group=munge.pw_gid,
            extra_groups=[]))
        _wait(sock.exists, timeout, "the munged socket", cluster)
        cluster.processes.append(_spawn([which("slurmctld"), "-D", "-i", "-f", str(conf)], root / "slurmctld.err", env))
        cluster.processes.append(_spawn([which("slurmd"), "-D", "-f", str(conf)], root / "slurmd.err", env))
        _wait(lambda: cluster.node_state() == "idle", timeout, "sinfo to report the node idle", cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster
