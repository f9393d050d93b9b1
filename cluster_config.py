"""A TensorFlow cluster from TF_CONFIG: which tasks there are and which one this process is. No
TensorFlow here: a ps task, a worker and the chief all read their place before anything loads.

    TF_CONFIG='{"cluster": {"chief": ["a:2222"], "worker": ["b:2222"], "ps": ["c:2222"]},
                "task": {"type": "worker", "index": 0}}'
"""
import collections
import ipaddress
import json
import os
import socket

import checks
from errors import ClusterError, shown

TF_CONFIG = "TF_CONFIG"
JOBS = ("chief", "worker", "ps")


class Task:
    """This process's place in the cluster that TF_CONFIG describes."""

    def __init__(self, cluster, job, index):
        self.cluster, self.job, self.index = cluster, job, index

    @classmethod
    def from_environment(cls):
        """The task TF_CONFIG describes, or None where it is unset (one process)."""
        text = os.environ.get(TF_CONFIG, "").strip()
        if not text:
            return None
        try:
            config = json.loads(text)
            cluster, job, index = config["cluster"], config["task"]["type"], config["task"]["index"]
        # RecursionError: nested past Python's stack.
        except (ValueError, KeyError, TypeError, RecursionError) as error:
            raise ClusterError(f"{TF_CONFIG} is not a cluster description ({type(error).__name__}: "
                               f'{error}); expected {{"cluster": {{"chief": [...], "ps": [...]}}, '
                               f'"task": {{"type": "worker", "index": 0}}}}') from None
        _check(cluster, job, index)
        return cls(cluster, job, index)

    def __str__(self):
        return f"{self.job} {self.index}"

    @property
    def address(self):
        return self.cluster[self.job][self.index]

    @property
    def trainers(self):
        """The tasks that train: the chief and the workers."""
        return 1 + len(self.cluster.get("worker", []))

    @property
    def ps_tasks(self):
        return len(self.cluster["ps"])

    @property
    def number(self):
        """This trainer's number: 0 for the chief, 1... for the workers (its pairs' seed)."""
        return 0 if self.job == "chief" else self.index + 1

    @property
    def device(self):
        return f"/job:{self.job}/task:{self.index}"


def _check(cluster, job, index):
    """A ClusterError naming what is wrong with a cluster description."""
    if not isinstance(cluster, dict) or set(cluster) - set(JOBS):
        raise ClusterError(f"{TF_CONFIG}: the cluster's jobs are {', '.join(JOBS)}, "
                           f"not {shown(cluster)}")
    for name, addresses in cluster.items():
        if not isinstance(addresses, list):
            raise ClusterError(f"{TF_CONFIG}: the cluster's {name!r} must be a list of its tasks' "
                               f"host:port addresses, not {shown(addresses)}")
    if len(cluster.get("chief", [])) != 1 or not cluster.get("ps"):
        raise ClusterError(f"{TF_CONFIG}: a cluster has one chief and at least one ps task")
    addresses = [address for addresses in cluster.values() for address in addresses]
    if not all(isinstance(address, str) and _port(address) for address in addresses):
        raise ClusterError(f"{TF_CONFIG}: every task's address is host:port, a port from 1 to "
                           f"65535")
    # A host of other bytes than UTF-8 (`\xff`, as the environment gives it) no socket can name.
    unnamed = next((address for address in addresses if not checks.is_utf8(address)), None)
    if unnamed is not None:
        raise ClusterError(f"{TF_CONFIG}: the address {shown(unnamed)} is not UTF-8 text, which "
                           f"no host has")
    # A blank host, or one with a space or a control character in it, no task can be reached at
    # (it would wait for ever).
    unhosted = next((address for address in addresses
                     if not address.rpartition(":")[0] or not address.isprintable()
                     or any(character.isspace() for character in address)), None)
    if unhosted is not None:
        raise ClusterError(f"{TF_CONFIG}: the address {shown(unhosted)} has no host name, or "
                           f"one with a space or a control character in it")
    listening = collections.Counter(map(_listener, addresses))
    repeated = [address for address in addresses if listening[_listener(address)] > 1]
    if repeated:
        spellings = list(dict.fromkeys(repeated[:2]))
        names = " and ".join(spellings) + (", one address" if len(spellings) > 1 else "")
        raise ClusterError(f"{TF_CONFIG}: two tasks listen at {names}; each task needs an "
                           f"address of its own")
    if not isinstance(job, str) or job not in cluster:
        raise ClusterError(f"{TF_CONFIG}: this task's type {shown(job)} is not a job of the "
                           f"cluster ({', '.join(cluster)})")
    if isinstance(index, bool) or not isinstance(index, int):  # JSON's true is no task number
        raise ClusterError(f"{TF_CONFIG}: the task's index must be a whole number, "
                           f"not {shown(index)}")
    if not 0 <= index < len(cluster[job]):
        raise ClusterError(f"{TF_CONFIG}: task index {shown(index)} is out of range for the "
                           f"{len(cluster[job])} {job} task{'s' * (len(cluster[job]) != 1)}")


def _listener(address):
    """(host, port) as a task listens at `address`: an IP address in one spelling, and every
    spelling of this machine's loopback as one (a task listens on all of a machine's addresses)."""
    # A name's trailing dot (the DNS root: `localhost.`) names the same host.
    host = address.rpartition(":")[0].strip("[]").lower().removesuffix(".")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:  # IPv4's short spellings, as a socket takes them: 127.1 is 127.0.0.1
            ip = ipaddress.ip_address(socket.inet_aton(host))
        except (OSError, ValueError):
            return ("loopback" if host == "localhost" else host), _port(address)
    ip = getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:127.0.0.1 is 127.0.0.1
    return ("loopback" if ip.is_loopback else ip.compressed), _port(address)


def _port(address):
    """The port of a host:port address, or None where it has none in TCP's range."""
    port = address.rpartition(":")[2]
    return int(port) if port.isascii() and port.isdigit() and 1 <= int(port) <= 65535 else None
