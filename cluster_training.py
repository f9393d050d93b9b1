"""Training on a TensorFlow cluster: between-graph replication with ps tasks, beside training.py.

Every task runs `python run.py` with the same data and options, and TF_CONFIG (cluster_config.py)
saying which task it is. The ps tasks hold the variables, the two tables split across them; the
chief and the workers each build the same graph, placed by `replica_device_setter`, and train
asynchronously with training.py's loop, each with its own seeded pairs, counting the run's steps
together. The chief initialises the variables and writes the run folder; the workers write nothing.
"""
import hashlib
import json
import socket
import threading
import time

import run_record
from bands2vec_graph import tf, tf1
from checkpoint_files import UnreadableCheckpoint, checkpoint_step, latest_checkpoint
from errors import ClusterError, ClusterLost, RunError, RunInterrupted
from interrupts import signals_as_a_flag
from training import Interrupted, Loop, restore, tf_reason, train_vectors

# How long a task waits for a ps task, or a worker for the chief to initialise the variables,
# before it says so and stops: never a hang. The chief may first load a million artists (20 s).
WAIT_SECONDS = 120
# A session.run that takes longer than this has lost a task (a step takes milliseconds).
STEP_TIMEOUT_MS = 60_000
# How long a ps task waits, once the chief is done, for the workers' word that they have stopped:
# a worker that died says nothing.
WORKERS_GRACE_SECONDS = 10
# Words the trainers' stops a ps task's queue holds: far more than a cluster's trainers, restarted.
DONE_WORDS = 100_000
# How often a ps task looks for the trainers' word that they have stopped.
WORD_POLL_SECONDS = 0.2
# The errors of a session whose cluster has lost a task.
LOST = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
        tf.errors.CancelledError)


def run_digest(catalog, options, cluster):
    """What every task of a cluster must agree on: the data, the options that shape learning, and
    the cluster's tasks."""
    settings = json.dumps([catalog.fingerprint, options.hparams(), cluster], sort_keys=True)
    return hashlib.sha1(settings.encode()).hexdigest()


def work(catalog, options, task, say):
    """A worker: train with the other tasks until the run's steps are done; nothing is written."""
    say(f"{task}: training with the {task.trainers - 1} other "
        f"trainer{'s' * (task.trainers != 2)} of the cluster ({options.steps:,} steps in all; "
        f"the chief {task.cluster['chief'][0]} writes the run)")
    try:
        _, stats = train_vectors(catalog, options, None, say=say,
                                 runtime=Trainer(task, catalog, options))
    except Interrupted as stop:
        raise RunInterrupted(f"{task}: interrupted at the run's step {stop.stats.steps:,}; "
                             f"the run goes on without it", None) from None
    say(f"{task}: done, at the run's step {stats.steps:,}")


class ClusterLoop(Loop):
    """training.Loop for a trainer of a cluster: it trains until the run's global step, which every
    trainer advances, reaches the run's steps."""

    def __init__(self, task, session, model, catalog, options, writer, folder, say, probe,
                 on_checkpoint):
        super().__init__(session, model, catalog, options, writer, folder, say, probe,
                         on_checkpoint)
        self.trainer = task.number
        self.who = "" if writer else f"{task}: "

    def _fetches(self):
        return super()._fetches() + [self.model.global_step]  # which every trainer advances

    def _draws(self):
        return self.options.steps_per_draw

    def _done(self):
        return self.step >= self.options.steps

    def _step_of(self, claimed, fetched):
        return int(fetched[-1])


class Trainer:
    """How the chief or a worker trains: its variables on the ps tasks, its session through its
    server, and a word to the ps tasks when it stops."""

    def __init__(self, task, catalog, options):
        self.task, self.digest = task, run_digest(catalog, options, task.cluster)
        self.writes = task.job == "chief"
        self.coordination = self.session = None

    def loop(self, *args):
        return ClusterLoop(self.task, *args)

    def placement(self):
        """Variables round-robin on the ps tasks, the two tables split in as many parts."""
        device = tf1.train.replica_device_setter(ps_tasks=self.task.ps_tasks,
                                                 worker_device=self.task.device,
                                                 cluster=tf1.train.ClusterSpec(self.task.cluster))
        return device, tf1.fixed_size_partitioner(self.task.ps_tasks)

    def session_config(self, config):
        """No XLA over the step (split tables' rows come in shapes that change every step, and XLA
        would recompile for each); talk to the ps tasks and itself only; a step that hangs fails."""
        config.device_filters.extend(["/job:ps", self.task.device])
        config.operation_timeout_in_ms = STEP_TIMEOUT_MS
        return config

    def open_session(self, model, config, checkpoint):
        self.coordination = Coordination(self.task, model.graph, self.digest)
        wait_for_parameter_servers(self.task)
        target = self.coordination.server.target
        if self.writes:
            self.session = tf1.Session(target, graph=model.graph, config=config)
            _answered(lambda: self.session.run(self.coordination.init), self.task,
                      STEP_TIMEOUT_MS / 1000)
            self.session.run(model.init)
            if checkpoint:
                restore(self.session, model, checkpoint)
            return self.session
        with model.graph.as_default():
            ready = tf1.report_uninitialized_variables()  # every variable, the run digest's too
        # The first contact, bounded as the chief's: where another program is at a ps address,
        # the manager's first look would wait for ever, past its own bound.
        first = tf1.Session(target, graph=model.graph, config=config)
        _answered(lambda: first.run(ready), self.task, STEP_TIMEOUT_MS / 1000)
        first.close()
        manager = tf1.train.SessionManager(graph=model.graph, ready_op=ready,
                                           recovery_wait_secs=0.5)
        try:
            self.session = _answered(
                lambda: manager.wait_for_session(target, config=config, max_wait_secs=WAIT_SECONDS),
                self.task, WAIT_SECONDS + STEP_TIMEOUT_MS / 1000)
        except tf.errors.DeadlineExceededError:
            raise ClusterError(f"{self.task}: the chief has not started the run in "
                               f"{WAIT_SECONDS} s: start it, "
                               f"with the same --data and options") from None
        self.coordination.check(self.session, self.digest)
        return self.session

    def failed(self, error, folder):
        if isinstance(error, LOST):
            # Closing it would hang: the process ends without closing it.
            _ABANDONED.append(self.session)
            return lost(self.task, error, folder if self.writes else None)
        reason = tf_reason(error)
        # A trainer that reached itself at a ps task's address: one listener under two names.
        mixed = ("; does TF_CONFIG give two tasks one address under two names (0.0.0.0, a host "
                 "name)?" if "unknown device" in reason else "")
        return RunError(f"{folder or self.task}: training stopped: {reason.rstrip('.')}{mixed}")

    def close(self, session, finished):
        """Close the session; a worker says it has stopped, done or not (the ps tasks are not to
        wait for it), the chief only once the run is done (they keep the variables for its
        --resume)."""
        if session in _ABANDONED:
            return
        if self.coordination and (finished or not self.writes):
            self.coordination.say_done(session)
        session.close()


_ABANDONED = []  # sessions of a cluster that lost a task: TensorFlow would hang closing them


def _answered(call, task, seconds):
    """call()'s value, or ClusterLost where it has not returned in `seconds`: a session's first
    contact with a ps address where another program accepts connections waits in TensorFlow's C++
    for ever, where no Ctrl-C reaches. Its thread is left there; the process ends without it."""
    done, outcome = threading.Event(), {}

    def attempt():
        try:
            outcome["value"] = call()
        except BaseException as error:  # raised here, in the task's thread
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=attempt, daemon=True).start()
    if not done.wait(seconds):  # Ctrl-C and SIGTERM are heard meanwhile
        raise ClusterLost(f"{task}: the ps tasks at {', '.join(task.cluster['ps'])} accept "
                          f"connections but have not answered as TensorFlow does in {seconds:g} "
                          f"s: is another program at an address of TF_CONFIG's?")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _checkpoint_step(folder):
    """The step of the run's last checkpoint, or None."""
    try:
        checkpoint = latest_checkpoint(folder)
    except UnreadableCheckpoint:
        return None
    return checkpoint_step(checkpoint) if checkpoint else None


def lost(task, error, folder=None):
    """ClusterLost for a TensorFlow error that says a task has gone; the chief's says what its run
    at `folder` keeps."""
    step = None if folder is None else _checkpoint_step(folder)
    keeps = (f"; the run keeps its checkpoint at step {step:,}: restart the ps tasks, then "
             f"`{run_record.next_command(folder)}` on the chief, with the same TF_CONFIG"
             if step is not None else "")
    return ClusterLost(f"{task}: lost the parameter servers ({tf_reason(error)}){keeps}")


def server(task):
    try:
        return tf1.train.Server(tf1.train.ClusterSpec(task.cluster), job_name=task.job,
                                task_index=task.index)
    except Exception as error:  # TensorFlow's UnknownError for a port in use, among others
        raise ClusterError(f"{task} cannot serve at {task.address} ({tf_reason(error)}): is "
                           f"this task running already, or another program at that port?") from None


def wait_for_parameter_servers(task):
    """Return once every ps task accepts connections; ClusterLost after WAIT_SECONDS. (A session
    whose ps is not there would wait for it for ever.)"""
    deadline = time.monotonic() + WAIT_SECONDS
    for index, address in enumerate(task.cluster["ps"]):
        host, _, port = address.rpartition(":")
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ClusterLost(f"ps {index} at {address} has not answered in "
                                      f"{WAIT_SECONDS} s: start it, or check TF_CONFIG") from None
                time.sleep(0.5)


class Coordination:
    """A trainer's part in the cluster beside the model: its server (kept for as long as its
    session); the chief's run digest in a variable on ps 0, for every task to compare with its own;
    and a queue on each ps, on which the trainers say they have stopped."""

    def __init__(self, task, graph, digest):
        self.task, self.server = task, server(task)
        with graph.as_default():
            with tf1.device("/job:ps/task:0"):
                self.digest = tf1.get_variable("cluster/run_digest",
                                               initializer=tf.constant(digest), trainable=False)
            self.init = tf1.variables_initializer([self.digest])
            self.done = [_done_queue(task, index).enqueue(task.number)
                         for index in range(task.ps_tasks)]

    def check(self, session, digest):
        """A ClusterError if the chief trains other data or options than this task would."""
        theirs = session.run(self.digest).decode()
        if theirs != digest:
            raise ClusterError(f"{self.task}: the chief trains other data or options, or in "
                               f"another cluster (digest {theirs[:12]}, here {digest[:12]}): "
                               f"start every task with the same --data, options and TF_CONFIG "
                               f"cluster")

    def say_done(self, session):
        """Tell every ps task that this trainer has stopped."""
        for done in self.done:
            session.run(done)


def _done_queue(task, index):
    """ps task `index`'s queue of the trainers' word that they have stopped."""
    with tf1.device(f"/job:ps/task:{index}"):
        # Room for a word from every trainer, restarted ones too: a full queue would block it.
        # One room for any cluster: a task whose TF_CONFIG lists other tasks is refused by the
        # run digest in words, not by TensorFlow for a queue of another capacity.
        return tf1.FIFOQueue(DONE_WORDS, tf.int32, shared_name=f"cluster/done_{index}",
                             name=f"cluster/done_{index}")


def serve(task, say=print):
    """A ps task: serve the variables until the chief says the run is done, then wait a while for
    the workers to say they have stopped too (one that died says nothing), and return. Ctrl-C or
    SIGTERM stops it between two waits (raised inside TensorFlow's wait, it would be garbled)."""
    with signals_as_a_flag() as stopping:
        ps_server = server(task)
        graph = tf1.Graph()
        with graph.as_default():
            queue = _done_queue(task, task.index)
            words, stopped = queue.size(), queue.dequeue()
        say(f"{task}: serving the variables at {task.address} until the run is done")
        config = tf1.ConfigProto(device_filters=[task.device])
        with tf1.Session(ps_server.target, graph=graph, config=config) as session:
            waiting, deadline = set(range(task.trainers)), None
            while waiting and (deadline is None or time.monotonic() < deadline) \
                    and not stopping.is_set():
                # Counted, not waited on in a dequeue with a timeout: a word dequeued as the
                # timeout fell would be lost, and the ps would wait for it for ever.
                if not session.run(words):
                    time.sleep(WORD_POLL_SECONDS)  # Ctrl-C and SIGTERM are heard between two
                    continue
                waiting.discard(int(session.run(stopped)))
                if 0 not in waiting and deadline is None:  # the chief is done: the rest a while
                    deadline = time.monotonic() + WORKERS_GRACE_SECONDS
    if stopping.is_set():
        raise RunInterrupted(f"{task}: interrupted; the trainers lose the variables it served: "
                             f"start it again, then do as the chief's last line says", None)
    say(f"{task}: the run is done"
        + (f" ({len(waiting)} worker{'s' * (len(waiting) != 1)} did not say they had stopped)"
           if waiting else ""))
