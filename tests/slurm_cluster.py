"""A private single-node Slurm for tests, following ../shared/slurm/README.md:
Debian's slurm-wlm and munge, run as root without systemd or cgroups.

Everything lives in one temporary folder (its own munge key and socket, its
own ports, state and logs), so it neither needs nor disturbs a Slurm or munged
already running on the machine. ``start()`` returns the cluster with
``SLURM_CONF`` to export; ``stop()`` cancels its jobs and ends exactly the
daemons it started (by their pid files).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")
INSTALL_HINT = ("install them with `apt-get install slurm-wlm munge` (Debian; `make test` does this "
                "when run as root)")

CONF = """\
ClusterName=freqlibtest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={dir}/munge/munge.sock
CredType=cred/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/log/ctld.log
SlurmdLogFile={dir}/log/d.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
NodeName={host} CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class SlurmUnavailable(RuntimeError):
    """The cluster cannot be started here; the message says why and what to do."""


@dataclass
class Cluster:
    dir: Path
    conf: Path

    @property
    def env(self) -> dict:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                              env={**os.environ, **self.env}, **kw)

    def logs(self) -> str:
        out = []
        for p in (self.dir / "munge" / "munged.log", self.dir / "log" / "ctld.log", self.dir / "log" / "d.log"):
            if p.is_file():
                out.append(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_pidfiles(paths: list[Path], sig: int = 15, wait_s: float = 10.0) -> None:
    """Signal the processes named in ``paths`` (those this cluster started), wait for them."""
    pids = []
    for path in paths:
        try:
            pid = int(path.read_text().strip())
            os.kill(pid, sig)
            pids.append(pid)
        except (OSError, ValueError):
            continue
    end = time.time() + wait_s
    while pids and time.time() < end:
        for pid in list(pids):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                pids.remove(pid)
        time.sleep(0.1)


def start(timeout_s: float = 60.0) -> Cluster:
    """Start munged, slurmctld and slurmd in a fresh folder; wait until the node is idle."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        raise SlurmUnavailable(f"Slurm/munge programs missing: {', '.join(missing)}; {INSTALL_HINT}")
    if os.geteuid() != 0:
        raise SlurmUnavailable("the test Slurm runs its daemons as root (slurmd must); run the tests as root")
    try:
        import pwd
        pwd.getpwnam("munge")
    except KeyError:
        raise SlurmUnavailable(f"no user 'munge' (the munge package creates it); {INSTALL_HINT}") from None
    d = Path(tempfile.mkdtemp(prefix="freqlib-slurm-", dir="/tmp"))
    os.chmod(d, 0o755)                       # munged checks every folder on the path to its socket
    cluster = Cluster(d, d / "slurm.conf")
    try:
        for sub in ("state", "spool", "log", "munge"):
            (d / sub).mkdir()
        key = d / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        shutil.chown(d / "munge", "munge", "munge")
        shutil.chown(key, "munge", "munge")
        os.chmod(key, 0o400)
        m = d / "munge"
        res = subprocess.run(["su", "-s", "/bin/sh", "munge", "-c",
                              f"/usr/sbin/munged --socket={m}/munge.sock --key-file={key} "
                              f"--log-file={m}/munged.log --pid-file={m}/munged.pid --seed-file={m}/munged.seed"],
                             capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            raise SlurmUnavailable(f"munged did not start: {res.stderr.strip()}")
        cluster.conf.write_text(CONF.format(host=socket.gethostname().split(".")[0], dir=d,
                                            ctld_port=_free_port(), d_port=_free_port(),
                                            cpus=os.cpu_count() or 1))
        for daemon in ("slurmctld", "slurmd"):
            res = cluster.run(daemon, "-f", str(cluster.conf))
            if res.returncode != 0:
                raise SlurmUnavailable(f"{daemon} did not start: {res.stderr.strip()}\n{cluster.logs()}")
        end = time.time() + timeout_s
        state = ""
        while time.time() < end:
            state = cluster.run("sinfo", "-h", "-o", "%t").stdout.strip()
            if state == "idle":
                return cluster
            time.sleep(0.5)
        raise SlurmUnavailable(f"the node did not become idle within {timeout_s:.0f} s "
                               f"(sinfo: {state or 'no answer'})\n{cluster.logs()}")
    except BaseException:
        stop(cluster)
        raise


def stop(cluster: Cluster) -> None:
    """Cancel the cluster's jobs, end its daemons, remove its folder."""
    d = cluster.dir
    if (d / "slurmctld.pid").is_file():
        try:   # cancel, then let every job finish its clean-up (else its slurmstepd is orphaned)
            cluster.run("scancel", "--full", "--partition=debug")
            end = time.time() + 30
            while time.time() < end and cluster.run("squeue", "-h", "-o", "%i").stdout.strip():
                time.sleep(0.2)
        except (OSError, subprocess.TimeoutExpired):
            pass
    _kill_pidfiles([d / "slurmd.pid", d / "slurmctld.pid"])
    _kill_pidfiles([d / "munge" / "munged.pid"], sig=9)   # no state to save; TERM takes ~2 s
    shutil.rmtree(d, ignore_errors=True)
