"""Past one process, in one run on this machine: concurrent steps and a local cluster, against one
thread.

For the full data and (with --million) a 1,000,000-artist synthetic catalog:
1. one process at the catalog's default steps with 1, 2 and 4 concurrent steps;
2. a local cluster of separate processes on 127.0.0.1 (1 ps + chief + worker, and 2 ps + chief +
   worker) at the same total steps as one process (at the cluster's rate: the one process's
   diverges), and (the full data) with the cluster's defaults, 1.5 times the steps;
each with its training seconds, steps a second, genre@10 and score@10; then the bytes a step moves
between a trainer and the ps tasks, and what N machines would take for 10,000,000 artists, from the
CPU seconds each task of the 1-ps cluster spent on a step (its run less the same cluster's
one-step run).

    python benchmarks/cluster_benchmark.py --data ../shared/data/pitchfork [--million]
        [--million-steps N]
"""
import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import data_utils  # noqa: E402
import demo_data  # noqa: E402
import run_record  # noqa: E402
from artist_vectors import ArtistVectors  # noqa: E402
from options import (MAX_RATE, MOVE_GROWTH, MOVE_GROWTH_ABOVE, MOVE_PER_MEMBERSHIP,  # noqa: E402
                     TrainOptions)
from pair_sampler import membership_count  # noqa: E402
from quality import neighbour_agreement, quality_sample_size, sample_rows  # noqa: E402
from synthetic_catalog import write_tables  # noqa: E402


def quality(catalog, vectors):
    rows = sample_rows(len(catalog), quality_sample_size(len(catalog)))
    figures = neighbour_agreement(ArtistVectors(vectors, catalog.facts), 10, rows)
    return {"genre": figures["genre"], "score": figures["score"]}


def threads(catalog, options, concurrent):
    from training import train_vectors

    options = dataclasses.replace(options, concurrent_steps=concurrent)
    with tempfile.TemporaryDirectory() as folder:
        vectors, stats = train_vectors(catalog, options, folder, say=lambda *lines: None)
    return {"seconds": stats.seconds, "steps": stats.steps, **quality(catalog, vectors)}


def local_cluster(data, ps, args, logs):
    """A chief, a worker and `ps` ps tasks of `python run.py ARGS` on free ports; the chief's
    run.json and the CPU seconds each task took."""
    sockets = [socket.socket() for _ in range(2 + ps)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    spec = {"chief": [f"127.0.0.1:{ports[0]}"], "worker": [f"127.0.0.1:{ports[1]}"],
            "ps": [f"127.0.0.1:{port}" for port in ports[2:]]}
    tasks = [("ps", i) for i in range(ps)] + [("worker", 0), ("chief", 0)]
    processes = [subprocess.Popen([sys.executable, os.path.join(REPO, "run.py"), "--data", data,
                                   "--logdir", logs, "--run", "c", "--no-plots", *args],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env=dict(os.environ, TF_CONFIG=json.dumps(
                                      {"cluster": spec, "task": {"type": job, "index": index}})))
                 for job, index in tasks]
    try:
        cpu = {f"{job} {index}": cpu_seconds(process, 7200)
               for (job, index), process in zip(tasks, processes)}
    finally:
        for process in processes:
            process.kill()
    record = run_record.read(os.path.join(logs, "c"))
    return {"seconds": record.stats.seconds, "steps": record.stats.steps,
            "exits": [process.returncode for process in processes], "cpu": cpu,
            "genre": record.quality["genre"]["trained"],
            "score": record.quality["score"]["trained"]}


def cpu_seconds(process, timeout):
    """Wait for `process` to end; the CPU seconds it took (user and system)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        time.sleep(0.2)
    raise TimeoutError(f"a cluster task still runs after {timeout} s")


def concurrent_label(threads):
    return f"{threads} concurrent step{'s' * (threads > 1)}"


def step_bytes(options):
    """Bytes one step moves each way between a trainer and the ps tasks: the rows it gathers (its
    batch's embeddings, the NCE weights and biases of its true and sampled contexts) and their
    gradients back."""
    rows = 2 * options.batch_size + options.num_sampled
    return rows * options.embedding_size * 4 + (options.batch_size + options.num_sampled) * 4


def measure(name, data, catalog, steps, cluster_steps, with_defaults, scratch):
    options = TrainOptions(steps=steps).resolved(catalog)
    one = TrainOptions().resolved(catalog)
    rows = {}
    for concurrent in (1, 2, 4):
        rows[concurrent_label(concurrent)] = threads(catalog, options, concurrent)
        print(f"{name}, {concurrent} concurrent: {rows[list(rows)[-1]]}", file=sys.stderr,
              flush=True)
    for ps in (1, 2):
        label = f"cluster: {ps} ps + chief + worker, the one process's steps"
        rows[label] = local_cluster(data, ps, ["--steps", str(cluster_steps)],
                                    os.path.join(scratch, f"{name}-c{ps}"))
        print(f"{name}, {label}: {rows[label]}", file=sys.stderr, flush=True)
    if with_defaults:
        label = "cluster: 1 ps + chief + worker, its defaults"
        rows[label] = local_cluster(data, 1, [], os.path.join(scratch, f"{name}-defaults"))
        print(f"{name}, {label}: {rows[label]}", file=sys.stderr, flush=True)
    # The same cluster for one step: what its tasks spend apart from training (loading,
    # writing the run).
    start = local_cluster(data, 1, ["--steps", "1"], os.path.join(scratch, f"{name}-start"))
    for row in rows.values():
        row["steps_per_second"] = row["steps"] / row["seconds"]
    return {"artists": len(catalog), "steps": steps, "cluster_steps": cluster_steps,
            "batch_size": options.batch_size, "bytes_per_step": step_bytes(options), "rows": rows,
            "cluster_start": start, "default_concurrent_steps": options.concurrent_steps,
            "memberships_per_artist":
                sum(membership_count(catalog, kind) for kind in one.contexts) / len(catalog)}


def projection(result):
    """Hours for 10,000,000 artists with N trainers, each on a machine like this one, from the CPU a
    step of the 1-ps cluster took in each task (its run less the same cluster's one-step run) and
    the rules."""
    big = result["catalogs"].get("synthetic 1,000,000") or result["catalogs"]["pitchfork"]
    artists = 10_000_000
    growth = MOVE_GROWTH * math.log10(artists / MOVE_GROWTH_ABOVE)
    move = MOVE_PER_MEMBERSHIP * (1 + growth)
    steps = move * big["memberships_per_artist"] * artists / MAX_RATE
    one_process = big["rows"][concurrent_label(big["default_concurrent_steps"])]["steps_per_second"]
    run, start = (big["rows"]["cluster: 1 ps + chief + worker, the one process's steps"],
                  big["cluster_start"])
    work = {task: (run["cpu"][task] - start["cpu"][task]) / (run["steps"] - start["steps"])
            for task in run["cpu"]}
    trainer_cpu, ps_cpu = work["chief 0"] + work["worker 0"], work["ps 0"]
    cores = os.cpu_count()
    lines = [(1, 1, 0, steps, one_process, steps / one_process / 3600)]
    for trainers in (2, 4, 8, 16, 32):
        total = steps * (trainers + 1) / 2
        rate = trainers / trainer_cpu  # a trainer steps one at a time, on its own machine
        # Enough ps tasks (machines like this one, 10 Gbit/s each) for their share of every step's
        # work and rows.
        ps_tasks = math.ceil(max(rate * ps_cpu / cores, rate * big["bytes_per_step"] / 1.25e9))
        lines.append((trainers + ps_tasks, trainers, ps_tasks, total, rate, total / rate / 3600))
    return {"steps_one_process": steps, "one_process_steps_per_second": one_process,
            "trainer_cpu_per_step": trainer_cpu, "ps_cpu_per_step": ps_cpu, "rows": lines}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data",
                        default=os.environ.get(data_utils.DATA_ENV, "../shared/data/pitchfork"))
    parser.add_argument("--million", action="store_true",
                        help="add a 1,000,000-artist synthetic catalog")
    parser.add_argument("--million-steps", type=int,
                        help="steps at 1,000,000 artists (default: the defaults')")
    parser.add_argument("--million-cluster-steps", type=int, default=40_000,
                        help="the clusters' steps at 1,000,000 artists "
                             "(40,000: their steps a second)")
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "cluster.json"))
    args = parser.parse_args()

    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "catalogs": {}}
    with tempfile.TemporaryDirectory() as scratch:
        data = os.path.abspath(args.data)
        catalog = data_utils.load_catalog(data)
        steps = TrainOptions().resolved(catalog).steps
        result["catalogs"]["pitchfork"] = measure("pitchfork", data, catalog, steps, steps, True,
                                                  scratch)
        if args.million:
            data = write_tables(demo_data.demo_tables(1_000_000), os.path.join(scratch, "million"))
            catalog = data_utils.load_catalog(data)
            steps = args.million_steps or TrainOptions().resolved(catalog).steps
            result["catalogs"]["synthetic 1,000,000"] = measure(
                "million", data, catalog, steps, args.million_cluster_steps, False, scratch)
    result["projection"] = projection(result)
    print(table(result))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


def table(result):
    lines = [f"Cluster benchmark, {result['date']}, {result['machine']}", "",
             "| catalog | how | steps | training s | steps/s | vs 1 thread | genre@10 | score@10 |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, catalog in result["catalogs"].items():
        base = catalog["rows"][concurrent_label(1)]["steps_per_second"]
        for how, row in catalog["rows"].items():
            lines.append(f"| {name} | {how} | {row['steps']:,} | {row['seconds']:.1f} | "
                         f"{row['steps_per_second']:,.0f} | "
                         f"{row['steps_per_second'] / base:.2f}x | "
                         f"{row['genre']:.1%} | {row['score']:.1%} |")
    lines += ["",
              "| catalog | batch | bytes a step, each way, between a trainer and the ps tasks |",
              "| --- | ---: | ---: |"]
    lines += [f"| {name} | {c['batch_size']:,} | {c['bytes_per_step']:,} "
              f"({c['bytes_per_step'] / 2 ** 20:.2f} MiB) |"
              for name, c in result["catalogs"].items()]
    projected = result["projection"]
    lines += ["", f"10,000,000 artists: {projected['steps_one_process']:,.0f} steps in one "
                  f"process by the defaults' rules, at "
                  f"{projected['one_process_steps_per_second']:,.0f} steps/s here with the default "
                  f"concurrent steps. A step of the 1-ps cluster took "
                  f"{projected['trainer_cpu_per_step'] * 1e3:.1f} ms of a trainer's CPU and "
                  f"{projected['ps_cpu_per_step'] * 1e3:.1f} ms of the ps task's; with each "
                  f"trainer on a machine like this one, and enough ps tasks for their share:", "",
              "| machines | trainers | ps tasks | steps in all | steps/s | hours |",
              "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {m} | {t} | {p} | {total:,.0f} | {rate:,.0f} | {hours:.1f} |"
              for m, t, p, total, rate, hours in projected["rows"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
