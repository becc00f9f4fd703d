"""Hosts made of network namespaces on this one machine, for the cluster tier.

A "switch" namespace holds a bridge; each host namespace gets a veth into it and an
address in 10.77.0.0/24, a private range the lab creates and nothing else uses: traffic
stays inside namespaces made here. A host's firewall (nftables, else iptables) drops every
incoming TCP port but the ones it is told to open, as Vast.ai's port mapping does.
Processes started in a host are ended by their ids (the namespace's own pid list), never
by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SUBNET = "10.77.0"


def unavailable() -> str | None:
    """Why a lab cannot be built here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, firewall rules)"
    if not shutil.which("ip"):
        return "needs iproute2 (`ip`): apt-get install iproute2"
    if not (shutil.which("nft") or shutil.which("iptables")):
        return "needs nftables or iptables: apt-get install nftables"
    probe = f"scrprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode:
        return f"cannot create network namespaces here: {made.stderr.strip()}"
    try:
        veth = subprocess.run(["ip", "-n", probe, "link", "add", "a0", "type", "veth", "peer",
                               "name", "b0"], capture_output=True, text=True)
        if veth.returncode:
            return f"cannot create veth pairs here: {veth.stderr.strip()}"
        fw = _firewall_commands([6379])
        rules = subprocess.run(["ip", "netns", "exec", probe, *fw[0]], input=fw[1],
                               capture_output=True, text=True)
        if rules.returncode:
            return f"firewall rules cannot be set in a namespace: {rules.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _sh(*args: str, input: str | None = None) -> None:
    subprocess.run(list(args), check=True, capture_output=True, text=True, input=input)


def _firewall_commands(ports: Sequence[str | int]) -> tuple[list[str], str]:
    """A command and its stdin that set a drop-by-default input policy with ``ports``
    open (a port, or ``low-high``)."""
    if shutil.which("nft"):
        accepted = ", ".join(str(p) for p in ports)
        rules = ("table inet scribe_lab {\n chain input {\n"
                 "  type filter hook input priority 0; policy drop;\n"
                 '  iif "lo" accept\n  ct state established,related accept\n'
                 f"  tcp dport {{ {accepted} }} accept\n }}\n}}\n")
        return ["nft", "-f", "-"], rules
    lines = ["*filter", ":INPUT DROP [0:0]", "-A INPUT -i lo -j ACCEPT",
             "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"]
    lines += [f"-A INPUT -p tcp --dport {str(p).replace('-', ':')} -j ACCEPT" for p in ports]
    return ["iptables-restore"], "\n".join([*lines, "COMMIT", ""])


@dataclass
class Lab:
    """A switch and hosts; ``hosts`` maps a short name to its address."""

    tag: str
    hosts: dict[str, str]
    _procs: list[subprocess.Popen[Any]] = field(default_factory=list)

    def ns(self, host: str) -> str:
        return f"scr{self.tag}{host}"

    @property
    def switch(self) -> str:
        return f"scr{self.tag}sw"

    def up(self) -> None:
        _sh("ip", "netns", "add", self.switch)
        _sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        for host, address in self.hosts.items():
            self._wire(host, address)

    def _wire(self, host: str, address: str) -> None:
        ns, near, far = self.ns(host), f"s{self.tag}{host}", f"h{self.tag}{host}"
        _sh("ip", "netns", "add", ns)
        _sh("ip", "link", "add", near, "type", "veth", "peer", "name", far)
        _sh("ip", "link", "set", near, "netns", self.switch)
        _sh("ip", "link", "set", far, "netns", ns)
        _sh("ip", "-n", self.switch, "link", "set", near, "master", "br0", "up")
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", far)
        _sh("ip", "-n", ns, "link", "set", far, "up")
        # A default route, as a real host has: Ray finds its own address by asking the
        # kernel which source a packet to a public address would leave from.
        _sh("ip", "-n", ns, "route", "add", "default", "dev", far)

    def firewall(self, host: str, ports: Sequence[str | int]) -> None:
        command, rules = _firewall_commands(ports)
        _sh("ip", "netns", "exec", self.ns(host), *command, input=rules)

    def run(self, host: str, cmd: Sequence[str], *, timeout: float,
            env: dict[str, str] | None = None, check: bool = False,
            cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns(host), *cmd], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, check=check)

    def start(self, host: str, cmd: Sequence[str], *, env: dict[str, str], log: str,
              cwd: str | None = None) -> subprocess.Popen[Any]:
        """A long-running process in ``host``, in its own session (ended in :meth:`down`)."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", self.ns(host), *cmd], env=env,
                                    cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self._procs.append(proc)
        return proc

    def pids(self, host: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.ns(host)], capture_output=True,
                             text=True)
        return [int(p) for p in out.stdout.split()]

    def stop_host(self, host: str, grace_s: float = 5.0) -> None:
        """End every process in ``host``: its own pid list, TERM then KILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids(host):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace_s
            while self.pids(host) and time.monotonic() < deadline:
                time.sleep(0.2)

    def down(self) -> None:
        for host in self.hosts:
            self.stop_host(host)
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for ns in [*(self.ns(h) for h in self.hosts), self.switch]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
