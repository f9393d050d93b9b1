"""Training on a cluster with TensorFlow's own runtime: between-graph replication with parameter servers.

Every task runs `python run.py` with the same data and options, and `TF_CONFIG` (the convention TensorFlow's
tools read) saying the cluster and which task it is:

    TF_CONFIG='{"cluster": {"chief": ["a:2222"], "worker": ["b:2222"], "ps": ["c:2222"]},
                "task": {"type": "worker", "index": 0}}'

The `ps` tasks hold the variables, the two tables split across them; the chief and the workers each build the
same graph, placed by `replica_device_setter`, and train asynchronously, each with its own seeded pairs. The
chief initialises the variables and writes the run folder as one process does. This module sits beside the
training loop: the graph module only takes the device function and the partitioner it is given.
"""
import json
import os
import socket
import time

TF_CONFIG = "TF_CONFIG"
JOBS = ("chief", "worker", "ps")
# How long a task waits for a parameter server to answer, or a worker for the chief to initialise the
# variables, before it says so and stops: never a hang. The chief may first load a million artists (20 s).
WAIT_SECONDS = 120
# A session.run that takes longer than this has lost a task (a step takes milliseconds).
STEP_TIMEOUT_MS = 60_000
# How long a parameter server waits for the workers' word that they have stopped, once the chief has said
# the run is done: a worker that died says nothing.
WORKERS_GRACE_SECONDS = 10


class ClusterError(ValueError):
    """TF_CONFIG that cannot be used, or tasks that cannot train together; one line for the user."""


class ClusterLost(ClusterError):
    """A task of the cluster has gone (a parameter server died, or never answered). TensorFlow then hangs
    closing the session, so the process must end without it (run.py does, with os._exit)."""


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
        except (ValueError, KeyError, TypeError) as error:
            raise ClusterError(f"{TF_CONFIG} is not a cluster description ({type(error).__name__}: {error}); "
                               f'expected {{"cluster": {{"chief": [...], "ps": [...]}}, "task": '
                               f'{{"type": "worker", "index": 0}}}}') from None
        if not isinstance(cluster, dict) or set(cluster) - set(JOBS):
            raise ClusterError(f"{TF_CONFIG}: the cluster's jobs are {', '.join(JOBS)}, not {cluster!r}")
        if len(cluster.get("chief", [])) != 1 or not cluster.get("ps"):
            raise ClusterError(f"{TF_CONFIG}: a cluster has one chief and at least one ps task")
        if not all(isinstance(address, str) and address.rpartition(":")[2].isdigit()
                   for addresses in cluster.values() for address in addresses):
            raise ClusterError(f"{TF_CONFIG}: every task's address is host:port")
        if job not in cluster:
            raise ClusterError(f"{TF_CONFIG}: this task's type {job!r} is not a job of the cluster "
                               f"({', '.join(cluster)})")
        if not isinstance(index, int) or not 0 <= index < len(cluster[job]):
            raise ClusterError(f"{TF_CONFIG}: task index {index!r} is out of range for the "
                               f"{len(cluster[job])} {job} task{'s' * (len(cluster[job]) != 1)}")
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
    def number(self):
        """This trainer's number: 0 for the chief, 1... for the workers (its pairs' seed)."""
        return 0 if self.job == "chief" else self.index + 1

    @property
    def device(self):
        return f"/job:{self.job}/task:{self.index}"

    def server(self):
        from bands2vec_graph import tf1
        from training import tf_reason

        try:
            return tf1.train.Server(tf1.train.ClusterSpec(self.cluster), job_name=self.job, task_index=self.index)
        except Exception as error:  # TensorFlow's UnknownError for a port in use, among others
            raise ClusterError(f"{self} cannot serve at {self.address} ({tf_reason(error)})") from None

    def placement(self):
        """(device function, partitioner) for build_graph: variables round-robin on the ps tasks, the two
        tables split in as many parts, everything else on this task."""
        from bands2vec_graph import tf1

        device = tf1.train.replica_device_setter(ps_tasks=len(self.cluster["ps"]), worker_device=self.device,
                                                 cluster=tf1.train.ClusterSpec(self.cluster))
        return device, tf1.fixed_size_partitioner(len(self.cluster["ps"]))

    def session_config(self, config):
        """`config` for a session of this task: it talks to the ps tasks and itself only, not to every other
        task, and a step that hangs fails."""
        config.device_filters.extend(["/job:ps", self.device])
        config.operation_timeout_in_ms = STEP_TIMEOUT_MS
        return config

    def wait_for_parameter_servers(self):
        """Return once every ps task accepts connections; ClusterLost after WAIT_SECONDS. (A session whose
        ps is not there would wait for it for ever.)"""
        deadline = time.monotonic() + WAIT_SECONDS
        for index, address in enumerate(self.cluster["ps"]):
            host, _, port = address.rpartition(":")
            while True:
                try:
                    socket.create_connection((host, int(port)), timeout=5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise ClusterLost(f"ps {index} at {address} has not answered in {WAIT_SECONDS} s: start "
                                          f"it, or check {TF_CONFIG}") from None
                    time.sleep(0.5)

    def lost(self, error, checkpoint_step=None):
        """ClusterLost for a TensorFlow error that says a task has gone."""
        from training import tf_reason

        keeps = (f"; the run keeps its checkpoint at step {checkpoint_step:,}: restart the ps tasks, then "
                 f"`python run.py --resume` on the chief" if checkpoint_step is not None else "")
        return ClusterLost(f"{self}: lost the parameter servers ({tf_reason(error)}){keeps}")


# ---------------------------------------------------------------------------------------------
# What the tasks share beside the model: the data's fingerprint, and the word that the run is done
# ---------------------------------------------------------------------------------------------

class Shared:
    """A trainer's part in the cluster: its server (kept for as long as its session), and ops beside the
    model's, in its graph: the chief's fingerprint of the data and options in a variable on ps 0, for every
    task to compare with its own; and a queue on each ps, on which the trainers say they have stopped."""

    def __init__(self, task, graph, fingerprint):
        from bands2vec_graph import tf, tf1

        self.task, self.server = task, task.server()
        with graph.as_default():
            with tf1.device("/job:ps/task:0"):
                self.fingerprint = tf1.get_variable("cluster/fingerprint", initializer=tf.constant(fingerprint),
                                                    trainable=False)
            self.init = tf1.variables_initializer([self.fingerprint])
            self.done = [_done_queue(task, index).enqueue(task.number) for index in range(len(task.cluster["ps"]))]

    def check(self, session, fingerprint):
        """A ClusterError if the chief trains other data or options than this task would."""
        theirs = session.run(self.fingerprint).decode()
        if theirs != fingerprint:
            raise ClusterError(f"{self.task}: the chief trains other data or options (fingerprint {theirs[:12]}, "
                               f"here {fingerprint[:12]}): start every task with the same --data and options")

    def say_done(self, session):
        """Tell every ps task that this trainer has stopped."""
        for done in self.done:
            session.run(done)


def _done_queue(task, index):
    """ps task `index`'s queue of the trainers' word that they have stopped."""
    from bands2vec_graph import tf, tf1

    with tf1.device(f"/job:ps/task:{index}"):
        # Room for a word from every trainer, restarted ones too: a full queue would block the trainer.
        return tf1.FIFOQueue(100 * task.trainers, tf.int32, shared_name=f"cluster/done_{index}",
                             name=f"cluster/done_{index}")


def serve(task, say=print):
    """A ps task: serve the variables until the chief says the run is done, then wait a while for the workers
    to say they have stopped too (one that died says nothing), and return."""
    from bands2vec_graph import tf, tf1

    server = task.server()
    graph = tf1.Graph()
    with graph.as_default():
        stopped = _done_queue(task, task.index).dequeue()
    say(f"{task}: serving the variables at {task.address} until the run is done")
    config = tf1.ConfigProto(device_filters=[task.device])
    with tf1.Session(server.target, graph=graph, config=config) as session:
        waiting, deadline = set(range(task.trainers)), None
        while waiting and (deadline is None or time.monotonic() < deadline):
            try:
                # A second at a time, so that Ctrl-C and SIGTERM are heard while it waits.
                waiting.discard(int(session.run(stopped, options=tf1.RunOptions(timeout_in_ms=1000))))
            except tf.errors.DeadlineExceededError:
                continue
            if 0 not in waiting and deadline is None:  # the chief is done: the workers have a while to say so
                deadline = time.monotonic() + WORKERS_GRACE_SECONDS
    say(f"{task}: the run is done" + (f" ({len(waiting)} worker{'s' * (len(waiting) != 1)} did not say they "
                                      f"had stopped)" if waiting else ""))
