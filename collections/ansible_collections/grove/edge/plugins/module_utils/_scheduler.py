# Copyright: Grove developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two-level placement of service instances onto clusters and workers, like Oakestra's.

The root level picks a cluster from its aggregated free resources, the cluster level picks a
worker. Unlike Oakestra, a cluster whose workers all turn out to be unsuitable is not the end:
the next cluster in rank order is tried. Pure function of its input (stdlib only): the same
input, in whatever dict order, gives the same result.
"""

from __future__ import annotations

import math

from ansible_collections.grove.edge.plugins.module_utils._arch import architecture as _architecture
from ansible_collections.grove.edge.plugins.module_utils._ports import parse_host_port

STRATEGIES = ("spread", "pack")
SCHEDULED = "NODE_SCHEDULED"
TARGET_CLUSTER_NOT_FOUND = "TargetClusterNotFound"
TARGET_CLUSTER_NOT_ACTIVE = "TargetClusterNotActive"
TARGET_CLUSTER_NO_CAPACITY = "TargetClusterNoCapacity"
NO_ACTIVE_CLUSTER_WITH_CAPACITY = "NoActiveClusterWithCapacity"
NO_WORKER_CAPACITY = "NO_WORKER_CAPACITY"
NO_QUALIFIED_WORKER_FOUND = "NO_QUALIFIED_WORKER_FOUND"

# Instances in these states hold no resources on their worker.
RELEASED_STATUSES = frozenset({"DEAD", "COMPLETED", "FAILED", "UNDEPLOYED"})
# A dead or failed instance is restarted where it is if it still fits there, else moved.
RESTARTABLE_STATUSES = frozenset({"DEAD", "FAILED"})
MILLI = 1000


class SchedulerInputError(ValueError):
    """The service requests or the cluster facts are malformed."""


def _number(value: object, path: str, default: float = 0) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SchedulerInputError(f"{path}: must be a number, not {value!r}")
    return value


def _millicores(value: float) -> int:
    # Integer millicores keep sums exact (0.1 + 0.2 vcpus must equal 0.3).
    return round(value * MILLI)


def _port_key(value: object, path: str) -> tuple[int, str]:
    try:
        return parse_host_port(value)
    except ValueError as exc:
        raise SchedulerInputError(f"{path}: {exc}") from exc


def _host_ports(values: object, path: str) -> frozenset[tuple[int, str]]:
    if values is None:
        return frozenset()
    if not isinstance(values, list):
        raise SchedulerInputError(f"{path}: must be a list")
    return frozenset(_port_key(value, f"{path}[{index}]") for index, value in enumerate(values))


def _format_cpu(millicores: int) -> str:
    millicores = max(millicores, 0)
    if millicores % MILLI == 0:
        return str(millicores // MILLI)
    return f"{millicores / MILLI:g}"


class _Resources:
    """Free (or requested) capacity: vcpus in millicores, memory and storage in MB, GPU count."""

    __slots__ = ("cpu", "disk", "gpu", "memory")

    def __init__(self, cpu: int = 0, memory: float = 0, gpu: float = 0, disk: float = 0) -> None:
        self.cpu = cpu
        self.memory = memory
        self.gpu = gpu
        self.disk = disk

    # A resource the request does not need never disqualifies, even on an overcommitted worker.
    def fits(self, need: _Resources) -> bool:
        return (
            need.cpu <= max(self.cpu, 0)
            and need.memory <= max(self.memory, 0)
            and need.gpu <= max(self.gpu, 0)
            and need.disk <= max(self.disk, 0)
        )

    def shortfalls(self, need: _Resources) -> list[str]:
        problems = []
        if need.cpu > max(self.cpu, 0):
            problems.append(f"needs {_format_cpu(need.cpu)} vcpus, {_format_cpu(self.cpu)} free")
        if need.memory > max(self.memory, 0):
            problems.append(f"needs {need.memory:g} MB memory, {max(self.memory, 0):g} MB free")
        if need.gpu > max(self.gpu, 0):
            problems.append(f"needs {need.gpu:g} vgpus, {max(self.gpu, 0):g} free")
        if need.disk > max(self.disk, 0):
            problems.append(f"needs {need.disk:g} MB storage, {max(self.disk, 0):g} MB free")
        return problems

    def take(self, need: _Resources) -> None:
        self.cpu -= need.cpu
        self.memory -= need.memory
        self.gpu -= need.gpu
        self.disk -= need.disk

    def rank_after(self, need: _Resources) -> tuple:
        return (
            self.cpu - need.cpu,
            self.memory - need.memory,
            self.gpu - need.gpu,
            self.disk - need.disk,
        )


class _Record:
    """An instance a worker reports: what it holds there and how the scheduler treats it."""

    __slots__ = ("need", "number", "ports", "service", "status", "worker")

    def __init__(self, worker: _Worker, record: dict, path: str) -> None:
        self.worker = worker
        self.service, self.number = _record_identity(record, path)
        self.status = str(record.get("status", "")).upper()
        self.need = _requested(record.get("resources") or {}, f"{path}.resources")
        # None: the facts do not say, so the service's requested ports stand in (reserve_known_ports).
        self.ports = (
            _host_ports(record["host_ports"], f"{path}.host_ports") if "host_ports" in record else None
        )

    @property
    def holds_resources(self) -> bool:
        return self.status not in RELEASED_STATUSES

    @classmethod
    def least_of(cls, copies: list[_Record], default_ports: frozenset[tuple[int, str]]) -> _Record:
        """One running instance reported by several containers on the same worker (their labels
        agree, their names do not). Only the canonically named one is recreated with the new spec,
        and the facts cannot say which that is: assume it holds the least of each resource and only
        the host ports every copy holds, so growing it in place is never underestimated. The other
        copies keep what they hold, which the worker's free resources already count."""
        first = copies[0]
        merged = cls.__new__(cls)
        merged.worker, merged.service, merged.number, merged.status = (
            first.worker,
            first.service,
            first.number,
            first.status,
        )
        merged.need = _Resources(
            cpu=min(copy.need.cpu for copy in copies),
            memory=min(copy.need.memory for copy in copies),
            gpu=min(copy.need.gpu for copy in copies),
            disk=min(copy.need.disk for copy in copies),
        )
        merged.ports = frozenset.intersection(
            *(copy.ports if copy.ports is not None else default_ports for copy in copies)
        )
        return merged


class _Worker:
    __slots__ = (
        "architecture",
        "cluster",
        "free",
        "instance_count",
        "key",
        "missing",
        "name",
        "ports",
        "reachable",
        "records",
        "runtimes",
        "service_counts",
    )

    def __init__(self, cluster: str, name: str, node: object) -> None:
        path = f"clusters.{cluster}.workers.{name}"
        if not isinstance(node, dict):
            raise SchedulerInputError(f"{path}: must be the node_info facts (a dict)")
        self.cluster = cluster
        self.name = name
        self.key = f"{cluster}/{name}"
        self.reachable = node.get("reachable", True) is True
        self.architecture = _architecture(str(node.get("architecture") or ""))
        runtimes = node.get("runtimes") or []
        if not isinstance(runtimes, list):
            raise SchedulerInputError(f"{path}.runtimes: must be a list")
        self.runtimes = frozenset(str(runtime) for runtime in runtimes)
        missing = node.get("cni_missing") or []
        if not isinstance(missing, list):
            raise SchedulerInputError(f"{path}.cni_missing: must be a list")
        self.missing = ", ".join(sorted(str(plugin) for plugin in missing))
        gpus = node.get("gpus") or []
        gpu_count = len(gpus) if isinstance(gpus, list) else _number(gpus, f"{path}.gpus")
        disk_free = _number(node.get("disk_free_mb"), f"{path}.disk_free_mb")
        self.free = _Resources(
            cpu=_millicores(_number(node.get("vcpus"), f"{path}.vcpus")),
            memory=_number(node.get("memory_mb"), f"{path}.memory_mb"),
            gpu=gpu_count,
            # Without a disk total, the requests of the instances already there come off the
            # measured free space: counting what they wrote twice errs on the safe side.
            disk=_number(node.get("disk_mb"), f"{path}.disk_mb", default=disk_free),
        )
        # A multiset: two instances may report the same host port (a duplicate after a worker came
        # back), and releasing one of them must not free the port.
        self.ports: dict[tuple[int, str], int] = {}
        self.service_counts: dict[str, int] = {}
        self.instance_count = 0
        self.records: list[_Record] = []
        self._count_instances(node.get("instances") or [], f"{path}.instances")
        # Reservations bound what the instances may use; the measurements also see everything
        # else on the host. Trust whichever leaves less.
        memory_free = node.get("memory_free_mb")
        if memory_free is not None:
            self.free.memory = min(self.free.memory, _number(memory_free, f"{path}.memory_free_mb"))
        if node.get("disk_mb") is not None:
            self.free.disk = min(self.free.disk, disk_free)

    def _count_instances(self, instances: object, path: str) -> None:
        if not isinstance(instances, list):
            raise SchedulerInputError(f"{path}: must be a list")
        for index, data in enumerate(instances):
            item_path = f"{path}[{index}]"
            if not isinstance(data, dict):
                raise SchedulerInputError(f"{item_path}: must be a dict")
            record = _Record(self, data, item_path)
            if record.status == "UNDEPLOYED":
                continue
            self.records.append(record)
            if not record.holds_resources:
                continue
            self.free.take(record.need)
            self.hold_ports(record.ports or ())
            self.service_counts[record.service] = self.service_counts.get(record.service, 0) + 1
            self.instance_count += 1

    def hold_ports(self, ports) -> None:
        for port in ports:
            self.ports[port] = self.ports.get(port, 0) + 1

    def ports_taken(self, wanted: frozenset[tuple[int, str]], own: frozenset[tuple[int, str]] = frozenset()):
        """The wanted host ports that an instance other than the one holding `own` uses here."""
        return sorted(port for port in wanted if self.ports.get(port, 0) - (port in own) > 0)

    def place(self, need: _Resources, service: str, ports: frozenset[tuple[int, str]]) -> None:
        self.free.take(need)
        self.hold_ports(ports)
        self.service_counts[service] = self.service_counts.get(service, 0) + 1
        self.instance_count += 1


class _Cluster:
    __slots__ = ("aggregate", "instance_count", "name", "workers")

    def __init__(self, name: str, workers: list[_Worker]) -> None:
        self.name = name
        self.workers = workers
        self.aggregate = _Resources()
        self.instance_count = 0
        for worker in workers:
            if worker.reachable:
                free = worker.free
                self.aggregate.cpu += max(free.cpu, 0)
                self.aggregate.memory += max(free.memory, 0)
                self.aggregate.gpu += max(free.gpu, 0)
                self.aggregate.disk += max(free.disk, 0)
                self.instance_count += worker.instance_count

    @property
    def active(self) -> bool:
        return any(worker.reachable for worker in self.workers)

    def account(self, worker: _Worker, need: _Resources, *, new_instance: bool = True) -> None:
        # The aggregate counts each worker's free resources only down to zero, so take exactly the
        # part of `need` that came out of positive free capacity.
        free = worker.free
        self.aggregate.take(
            _Resources(
                cpu=max(free.cpu, 0) - max(free.cpu - need.cpu, 0),
                memory=max(free.memory, 0) - max(free.memory - need.memory, 0),
                gpu=max(free.gpu, 0) - max(free.gpu - need.gpu, 0),
                disk=max(free.disk, 0) - max(free.disk - need.disk, 0),
            )
        )
        self.instance_count += new_instance


def _requested(resources: object, path: str) -> _Resources:
    if not isinstance(resources, dict):
        raise SchedulerInputError(f"{path}: must be a dict")
    return _Resources(
        cpu=_millicores(_number(resources.get("vcpus"), f"{path}.vcpus")),
        memory=_number(resources.get("memory"), f"{path}.memory"),
        gpu=_number(resources.get("vgpus"), f"{path}.vgpus"),
        disk=_number(resources.get("storage"), f"{path}.storage"),
    )


def _record_identity(record: dict, path: str) -> tuple[str, int]:
    service = record.get("service")
    number = record.get("instance_number")
    if (not isinstance(service, str) or not isinstance(number, int)) and isinstance(record.get("id"), str):
        # `app.appns.svc.svcns.instance.N` is the container name, so it identifies the instance too.
        prefix, _separator, suffix = record["id"].rpartition(".instance.")
        if prefix and suffix.isdigit():
            service, number = prefix, int(suffix)
    if not isinstance(service, str) or isinstance(number, bool) or not isinstance(number, int):
        raise SchedulerInputError(f"{path}: needs `service` and `instance_number` (or an `id`)")
    return service, number


class _Request:
    __slots__ = (
        "architecture",
        "cluster",
        "instance_numbers",
        "need",
        "nodes",
        "ports",
        "qualified",
        "service",
        "virtualization",
    )

    def __init__(self, data: object, index: int) -> None:
        path = f"services[{index}]"
        if not isinstance(data, dict):
            raise SchedulerInputError(f"{path}: must be a dict")
        service = data.get("service")
        if not isinstance(service, str) or not service:
            raise SchedulerInputError(f"{path}.service: must be the fully qualified service name")
        self.service = service
        requirements = data.get("requirements") or {}
        self.need = _requested(requirements, f"{path}.requirements")
        if min(self.need.cpu, self.need.memory, self.need.gpu, self.need.disk) < 0:
            raise SchedulerInputError(f"{path}.requirements: resources must not be negative")
        self.virtualization = str(requirements.get("virtualization") or "container")
        self.architecture = _architecture(str(requirements.get("architecture") or ""))
        numbers = data.get("instance_numbers", [0])
        if not isinstance(numbers, list) or not all(
            isinstance(number, int) and not isinstance(number, bool) and number >= 0 for number in numbers
        ):
            raise SchedulerInputError(f"{path}.instance_numbers: must be a list of non-negative integers")
        self.instance_numbers = sorted(set(numbers))
        self.ports = _host_ports(data.get("host_ports"), f"{path}.host_ports")
        self.cluster = ""
        self.nodes: frozenset[str] | None = None
        self.qualified: dict[str, list[_Worker]] = {}
        self._read_constraints(data.get("constraints") or [], f"{path}.constraints")

    def _read_constraints(self, constraints: object, path: str) -> None:
        if not isinstance(constraints, list):
            raise SchedulerInputError(f"{path}: must be a list")
        for index, constraint in enumerate(constraints):
            item_path = f"{path}[{index}]"
            if not isinstance(constraint, dict) or constraint.get("type") != "direct":
                raise SchedulerInputError(f"{item_path}: only `direct` constraints are supported")
            cluster = constraint.get("cluster") or ""
            node = constraint.get("node") or ""
            if not isinstance(cluster, str) or not isinstance(node, str):
                raise SchedulerInputError(f"{item_path}: `cluster` and `node` must be strings")
            if cluster:
                self.cluster = cluster
            names = frozenset(name.strip() for name in node.split(";") if name.strip())
            if names:
                self.nodes = names if self.nodes is None else self.nodes & names

    def allows(self, worker: _Worker) -> bool:
        if self.cluster and worker.cluster != self.cluster:
            return False
        return self.nodes is None or worker.name in self.nodes

    def kind_problem(self, worker: _Worker) -> str:
        """Why the worker can never host this service, whatever its load ("" if it can)."""
        if not worker.reachable:
            return "unreachable"
        if self.nodes is not None and worker.name not in self.nodes:
            return "not in the direct constraint's node list"
        if worker.missing:
            return f"CNI plugins missing: {worker.missing}"
        if self.virtualization not in worker.runtimes:
            offered = ", ".join(sorted(worker.runtimes)) or "none"
            return f"no {self.virtualization!r} runtime (has: {offered})"
        if self.architecture and worker.architecture != self.architecture:
            return f"architecture {worker.architecture or 'unknown'}, needs {self.architecture}"
        return ""

    def qualified_workers(self, cluster: _Cluster) -> list[_Worker]:
        workers = self.qualified.get(cluster.name)
        if workers is None:
            workers = [worker for worker in cluster.workers if not self.kind_problem(worker)]
            self.qualified[cluster.name] = workers
        return workers

    def load_problems(self, worker: _Worker) -> list[str]:
        return worker.free.shortfalls(self.need) + _port_problems(worker.ports_taken(self.ports))

    def change_need(self, record: _Record) -> _Resources:
        """What an instance running on its worker needs on top of what it holds, to take this spec.

        Never less than nothing: the instance is recreated in place after the other placements of
        the same run may have started, so what a smaller spec would free is not handed out again.
        """
        held, need = record.need, self.need
        return _Resources(
            cpu=max(need.cpu - held.cpu, 0),
            memory=max(need.memory - held.memory, 0),
            gpu=max(need.gpu - held.gpu, 0),
            disk=max(need.disk - held.disk, 0),
        )

    def change_problems(self, record: _Record) -> list[str]:
        """Why a running instance cannot take this spec where it is (empty if it can)."""
        extra = self.change_need(record)
        problems = [f"to grow in place {problem}" for problem in record.worker.free.shortfalls(extra)]
        own = record.ports if record.ports is not None else self.ports
        return problems + _port_problems(record.worker.ports_taken(self.ports, own))


def _port_problems(taken: list[tuple[int, str]]) -> list[str]:
    if not taken:
        return []
    return ["host port {} already in use".format(", ".join(f"{port}/{protocol}" for port, protocol in taken))]


def _rank(strategy: str, after: tuple, replicas: int, instances: int, name: str) -> tuple:
    """Sort key (lowest first) of a cluster or worker, from its free resources after the placement."""
    if strategy == "spread":
        # Most free vcpus, then memory; among equals the one running fewest replicas and instances.
        return (-after[0], -after[1], replicas, instances, -after[2], -after[3], name)
    # Best fit: the least that still fits, so big workers stay free for big services.
    return (*after, name)


class _Placer:
    def __init__(self, clusters: object, strategy: str) -> None:
        if strategy not in STRATEGIES:
            raise SchedulerInputError(f"strategy: must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
        if not isinstance(clusters, dict):
            raise SchedulerInputError("clusters: must be a dict of cluster name to {workers: {...}}")
        self.strategy = strategy
        self.clusters: dict[str, _Cluster] = {}
        self.existing: dict[tuple[str, int], list[_Record]] = {}
        self.kept: set[tuple[str, int, str]] = set()
        for cluster_name in sorted(clusters, key=str):
            spec = clusters[cluster_name]
            workers = spec.get("workers") if isinstance(spec, dict) else None
            if not isinstance(workers, dict):
                raise SchedulerInputError(f"clusters.{cluster_name}: needs a `workers` dict")
            built = []
            for name in sorted(workers, key=str):
                worker = _Worker(str(cluster_name), str(name), workers[name])
                for record in worker.records:
                    self.existing.setdefault((record.service, record.number), []).append(record)
                built.append(worker)
            self.clusters[str(cluster_name)] = _Cluster(str(cluster_name), built)

    def reserve_known_ports(self, requests: list[_Request]) -> None:
        """Running replicas occupy their service's host ports even when the facts do not list them."""
        by_service = {request.service: request.ports for request in requests if request.ports}
        for (service, _number), records in self.existing.items():
            ports = by_service.get(service)
            if ports:
                for record in records:
                    if record.holds_resources and record.ports is None:
                        record.worker.hold_ports(ports)

    def place(self, request: _Request, number: int) -> dict:
        moved_from = ""
        records = self._choices(request, self.existing.get((request.service, number), []))
        # Running first, then by worker name, so the choice among duplicates is stable.
        for record in sorted(records, key=lambda item: (not item.holds_resources, item.worker.key)):
            worker = record.worker
            if not worker.reachable or not request.allows(worker) or request.kind_problem(worker):
                moved_from = moved_from or worker.key
                continue
            if record.holds_resources:
                # It runs: it stays if the worker has room for what the (possibly new) spec adds.
                if request.change_problems(record):
                    moved_from = moved_from or worker.key
                    continue
                self._commit_change(request, record)
            elif record.status in RESTARTABLE_STATUSES:
                if request.load_problems(worker):
                    moved_from = moved_from or worker.key
                    continue
                self._commit(request, worker)
            self.kept.add((request.service, number, worker.key))
            result = self._placement(request, number, worker, existing=True)
            result["instance_status"] = record.status
            return result
        result = self._place_new(request, number)
        if moved_from:
            result["moved_from"] = moved_from
            if result["status"] != SCHEDULED:
                self._keep_running_copy(request, number, result)
        return result

    @staticmethod
    def _choices(request: _Request, records: list[_Record]) -> list[_Record]:
        """The copies to consider keeping: at most one running copy per worker."""
        running: dict[str, list[_Record]] = {}
        choices = []
        for record in records:
            if record.holds_resources:
                running.setdefault(record.worker.key, []).append(record)
            else:
                choices.append(record)
        for copies in running.values():
            choices.append(copies[0] if len(copies) == 1 else _Record.least_of(copies, request.ports))
        return choices

    def _keep_running_copy(self, request: _Request, number: int, failure: dict) -> None:
        """No new home for it: a copy that still runs keeps running (with its old spec) rather
        than being removed with nothing to replace it."""
        for record in self.existing.get((request.service, number), []):
            if record.holds_resources and record.worker.reachable:
                self.kept.add((request.service, number, record.worker.key))
                failure["running_on"] = record.worker.key
                return

    def copies(self, services: set[str], *, reachable: bool, instance: int | None = None) -> list[dict]:
        """The copies of these services on workers that do (or do not) answer, except kept ones."""
        found = []
        for (service, number), records in self.existing.items():
            if service not in services or instance not in (None, number):
                continue
            for record in records:
                if (
                    record.worker.reachable == reachable
                    and (service, number, record.worker.key) not in self.kept
                ):
                    found.append(
                        {
                            "service": service,
                            "instance_number": number,
                            "cluster": record.worker.cluster,
                            "worker": record.worker.name,
                        }
                    )
        return sorted(
            found,
            key=lambda item: (item["cluster"], item["worker"], item["service"], item["instance_number"]),
        )

    def removals(self, requests: list[_Request]) -> list[dict]:
        """Instances of the requested services that the placement drops, on workers that answer:
        surplus numbers, copies that moved, duplicates left by a worker that came back."""
        return self.copies({request.service for request in requests}, reachable=True)

    def _placement(self, request: _Request, number: int, worker: _Worker, existing: bool) -> dict:
        return {
            "service": request.service,
            "instance_number": number,
            "cluster": worker.cluster,
            "worker": worker.name,
            "existing": existing,
            "status": SCHEDULED,
        }

    def _commit(self, request: _Request, worker: _Worker) -> None:
        self.clusters[worker.cluster].account(worker, request.need)
        worker.place(request.need, request.service, request.ports)

    def _commit_change(self, request: _Request, record: _Record) -> None:
        worker = record.worker
        extra = request.change_need(record)
        self.clusters[worker.cluster].account(worker, extra, new_instance=False)
        worker.free.take(extra)
        own = record.ports if record.ports is not None else request.ports
        worker.hold_ports(request.ports - own)

    def _candidate_clusters(self, request: _Request) -> tuple[list[_Cluster], str, dict[str, str]]:
        """Clusters in the order to try them, else the cluster-level failure status; with reasons."""
        if request.cluster:
            cluster = self.clusters.get(request.cluster)
            if cluster is None:
                return [], TARGET_CLUSTER_NOT_FOUND, {request.cluster: "no such cluster"}
            names = [cluster.name]
        else:
            names = list(self.clusters)
        fitting = []
        reasons = {}
        for name in names:
            cluster = self.clusters[name]
            if not cluster.active:
                reasons[name] = "no reachable worker"
            elif not cluster.aggregate.fits(request.need):
                reasons[name] = "aggregated free resources: " + "; ".join(
                    cluster.aggregate.shortfalls(request.need)
                )
            else:
                fitting.append(cluster)
        if fitting:
            fitting.sort(
                key=lambda cluster: _rank(
                    self.strategy,
                    cluster.aggregate.rank_after(request.need),
                    0,
                    cluster.instance_count,
                    cluster.name,
                )
            )
            return fitting, "", reasons
        if request.cluster:
            cluster = self.clusters[request.cluster]
            status = TARGET_CLUSTER_NOT_ACTIVE if not cluster.active else TARGET_CLUSTER_NO_CAPACITY
        else:
            status = NO_ACTIVE_CLUSTER_WITH_CAPACITY
        return [], status, reasons

    def _best_worker(self, request: _Request, cluster: _Cluster) -> _Worker | None:
        best = None
        best_rank = None
        # This loop runs once per worker and instance: keep it free of avoidable calls.
        need = request.need
        need_cpu, need_memory, need_gpu, need_disk = need.cpu, need.memory, need.gpu, need.disk
        for worker in request.qualified_workers(cluster):
            free = worker.free
            after = (
                free.cpu - need_cpu,
                free.memory - need_memory,
                free.gpu - need_gpu,
                free.disk - need_disk,
            )
            if (
                (need_cpu > 0 and after[0] < 0)
                or (need_memory > 0 and after[1] < 0)
                or (need_gpu > 0 and after[2] < 0)
                or (need_disk > 0 and after[3] < 0)
            ):
                continue
            if request.ports and worker.ports_taken(request.ports):
                continue
            rank = _rank(
                self.strategy,
                after,
                worker.service_counts.get(request.service, 0),
                worker.instance_count,
                worker.name,
            )
            if best_rank is None or rank < best_rank:
                best, best_rank = worker, rank
        return best

    def _place_new(self, request: _Request, number: int) -> dict:
        clusters, status, reasons = self._candidate_clusters(request)
        for cluster in clusters:
            worker = self._best_worker(request, cluster)
            if worker is not None:
                self._commit(request, worker)
                return self._placement(request, number, worker, existing=False)
        if not clusters:
            return {
                "service": request.service,
                "instance_number": number,
                "status": status,
                "reasons": reasons,
            }
        # Worker reasons are only worked out on failure: placement itself must stay cheap.
        qualified = False
        for cluster in clusters:
            for worker in cluster.workers:
                problem = request.kind_problem(worker)
                if not problem:
                    qualified = True
                    problem = "; ".join(request.load_problems(worker))
                reasons[worker.key] = problem
        return {
            "service": request.service,
            "instance_number": number,
            "status": NO_WORKER_CAPACITY if qualified else NO_QUALIFIED_WORKER_FOUND,
            "reasons": dict(sorted(reasons.items())),
        }


def schedule(services: list, clusters: dict, strategy: str = "spread") -> dict:
    """Place every requested instance; JSON-serialisable `{"placements", "failures", "removals"}`.

    An instance a worker already runs stays there while the worker has room for its (possibly
    changed) spec; otherwise it is placed anew and `moved_from` names the old worker. `removals`
    lists the copies of the requested services to remove once the placements run (surplus
    numbers, moved copies, duplicates); a copy whose instance found no new home keeps running
    (`running_on` in its failure).

    services: [{"service": fqn, "requirements": {vcpus, memory, vgpus, storage, virtualization,
    architecture}, "instance_numbers": [0, ...], "constraints": [{"type": "direct", "cluster": ...,
    "node": "n1;n2"}], "host_ports": ["6080/tcp"]}]
    clusters: {cluster_name: {"workers": {worker_name: <grove.edge.node_info facts>}}}
    """
    if not isinstance(services, list):
        raise SchedulerInputError("services: must be a list")
    placer = _Placer(clusters, strategy)
    requests = [_Request(item, index) for index, item in enumerate(services)]
    seen: set[tuple[str, int]] = set()
    for request in requests:
        for number in request.instance_numbers:
            if (request.service, number) in seen:
                raise SchedulerInputError(f"{request.service} instance {number} is requested twice")
            seen.add((request.service, number))
    placer.reserve_known_ports(requests)
    placements = []
    failures = []
    for request in requests:
        for number in request.instance_numbers:
            result = placer.place(request, number)
            (placements if result.get("status") == SCHEDULED else failures).append(result)
    return {"placements": placements, "failures": failures, "removals": placer.removals(requests)}


def undeploy(services: list, clusters: dict, instance: int | None = None) -> dict:
    """Every copy of these services (only instance `instance`, if given) as `removals` on the
    workers that answer, and as `stranded` on those that do not (they go when they answer again)."""
    if not isinstance(services, list) or not all(isinstance(name, str) for name in services):
        raise SchedulerInputError("services: must be a list of fully qualified service names")
    if instance is not None and (isinstance(instance, bool) or not isinstance(instance, int) or instance < 0):
        raise SchedulerInputError(f"instance: must be a non-negative integer, not {instance!r}")
    placer = _Placer(clusters, STRATEGIES[0])
    names = set(services)
    return {
        "placements": [],
        "failures": [],
        "removals": placer.copies(names, reachable=True, instance=instance),
        "stranded": placer.copies(names, reachable=False, instance=instance),
    }
