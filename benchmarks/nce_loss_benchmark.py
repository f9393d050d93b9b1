"""Why `loss/nce` rises while the vectors learn: training as training.py trains (the same graph,
seed and pairs, one thread), measuring at a few steps on held-out pairs with fixed sampled
negatives:

- the batch's loss (what `loss/nce` shows) and the held-out NCE loss, split into the true pairs'
  term and the negatives' term;
- the mean NCE bias and the mean score u.w of the true pairs: which of the two carries the loss;
- the full softmax cross-entropy over every artist, against log(artists) for a uniform guess;
- the vectors' mean norm;

and, once, the loss of the pairs' own probabilities (the lowest any model can score on them), for
the default learning rate and for a tenth and a hundredth of it. docs/runs.md shows the results.

    python benchmarks/nce_loss_benchmark.py --data ../shared/data/pitchfork
"""
import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import data_utils  # noqa: E402
from bands2vec_graph import build_graph, tf1  # noqa: E402
from options import TrainOptions  # noqa: E402
from pair_sampler import PairSampler  # noqa: E402

HELD_OUT = 8192  # held-out pairs, in blocks of BLOCK, each block with its own fixed negatives
BLOCK = 1024
HELD_OUT_SEED = 12345  # not the training pairs' seed
SOFTMAX_PAIRS = 2048  # pairs the full softmax is taken over (pairs x artists floats)
MEASURE_AT = (1, 100, 300, 500, 700, 1000, 1500)  # and the last step
RATE_FACTORS = (1.0, 0.1, 0.01)


def sigmoid_cross_entropy(logits, label):
    return np.maximum(logits, 0) - logits * label + np.log1p(np.exp(-np.abs(logits)))


class HeldOut:
    """Held-out pairs, with negatives drawn once by the graph's own sampler and its expected
    counts."""

    def __init__(self, catalog, options, session, model, sampler_op):
        held = PairSampler(catalog, options.contexts, seed=HELD_OUT_SEED)
        self.inputs, labels = held.pairs(HELD_OUT)
        self.labels = labels[:, 0]
        self.negatives = [session.run(sampler_op.outputs,
                                      {model.train_labels: labels[start:start + BLOCK]})
                          for start in range(0, HELD_OUT, BLOCK)]

    def blocks(self):
        """(targets, contexts, sampled, true expected counts, sampled expected counts) a block."""
        for number, (sampled, true_count, sampled_count) in enumerate(self.negatives):
            rows = slice(number * BLOCK, (number + 1) * BLOCK)
            yield self.inputs[rows], self.labels[rows], sampled, true_count[:, 0], sampled_count

    def nce_terms(self, vectors, weights, biases):
        """The held-out NCE loss's two terms, a pair each: the true context's and the negatives'."""
        true_terms, negative_terms = [], []
        for targets, contexts, sampled, true_count, sampled_count in self.blocks():
            embedded = vectors[targets]
            true_logits = (np.sum(embedded * weights[contexts], 1) + biases[contexts]
                           - np.log(true_count))
            sampled_logits = embedded @ weights[sampled].T + biases[sampled] - np.log(sampled_count)
            true_terms.append(sigmoid_cross_entropy(true_logits, 1))
            negative_terms.append(sigmoid_cross_entropy(sampled_logits, 0).sum(1))
        return np.concatenate(true_terms), np.concatenate(negative_terms)

    def floor(self, catalog, options):
        """The NCE loss of the pairs' own probabilities p(context | artist): the lowest possible."""
        probability = PairProbability(catalog, options.contexts)
        true_terms, negative_terms = [], []
        for targets, contexts, sampled, true_count, sampled_count in self.blocks():
            true_p = probability(targets, contexts[:, None])[:, 0]
            sampled_p = probability(targets, np.broadcast_to(sampled, (len(targets), len(sampled))))
            true_terms.append(sigmoid_cross_entropy(np.log(true_p) - np.log(true_count), 1))
            logits = np.log(np.maximum(sampled_p, 1e-300)) - np.log(sampled_count)
            negative_terms.append(
                np.where(sampled_p > 0, sigmoid_cross_entropy(logits, 0), 0).sum(1))
        return float(np.mean(np.concatenate(true_terms) + np.concatenate(negative_terms)))


class PairProbability:
    """p(context | artist) as PairSampler draws pairs: a kind by its share and the artist's
    memberships, one of the artist's groups of it, another member of that group."""

    def __init__(self, catalog, shares):
        self.kinds = [(share, self._memberships(catalog, kind)) for kind, share in shares.items()]

    @staticmethod
    def _memberships(catalog, kind):
        groups = [ids for ids in catalog.context_groups(kind).values() if len(ids) >= 2]
        matrix = np.zeros((len(catalog), len(groups)))
        for column, ids in enumerate(groups):
            matrix[np.asarray(ids), column] = 1
        return matrix

    def __call__(self, targets, candidates):
        found, weights = np.zeros(candidates.shape), np.zeros(len(targets))
        for share, matrix in self.kinds:
            sizes, memberships = matrix.sum(0), matrix[targets].sum(1)
            weight = share * memberships / matrix.sum()
            per_group = (matrix[targets] / np.maximum(sizes - 1, 1)
                         / np.maximum(memberships, 1)[:, None])
            probability = np.einsum("ng,nmg->nm", per_group, matrix[candidates])
            probability[candidates == targets[:, None]] = 0
            found += weight[:, None] * probability
            weights += weight
        return found / weights[:, None]


def measures(held_out, vectors, weights, biases, batch_loss):
    true_terms, negative_terms = held_out.nce_terms(vectors, weights, biases)
    logits = vectors[held_out.inputs[:SOFTMAX_PAIRS]] @ weights.T + biases
    top = logits.max(1, keepdims=True)
    log_total = top[:, 0] + np.log(np.exp(logits - top).sum(1))
    contexts = held_out.labels[:SOFTMAX_PAIRS]
    return {"batch_loss": float(batch_loss),
            "held_out_nce": float(np.mean(true_terms + negative_terms)),
            "true_term": float(true_terms.mean()), "negatives_term": float(negative_terms.mean()),
            "mean_bias": float(biases.mean()),
            "true_score":
                float(np.mean(np.sum(vectors[held_out.inputs] * weights[held_out.labels], 1))),
            "softmax_cross_entropy":
                float(np.mean(log_total - logits[np.arange(len(contexts)), contexts])),
            "vector_norm": float(np.linalg.norm(vectors, axis=1).mean())}


def train_and_measure(catalog, options, with_floor):
    """{step: measures} over one training run; and the floor, if asked."""
    sampler = PairSampler(catalog, options.contexts)
    model = build_graph(len(catalog), options.embedding_size, options.num_sampled,
                        options.learning_rate, decay_steps=options.steps,
                        context_distribution=sampler.context_distribution(),
                        init_scale=options.init_scale, seed=options.seed)
    variables = {v.op.name: v for v in model.graph.get_collection("variables")}
    sampler_op = next(op for op in model.graph.get_operations()
                      if op.type == "FixedUnigramCandidateSampler")
    config = tf1.ConfigProto(intra_op_parallelism_threads=options.threads,
                             inter_op_parallelism_threads=options.threads)
    config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    with tf1.Session(graph=model.graph, config=config) as session:
        session.run(model.init)
        held_out = HeldOut(catalog, options, session, model, sampler_op)
        tables = [model.embeddings, variables["weights/nce_weights"].value(),
                  variables["biases/nce_biases"].value()]
        sampler.rng = np.random.default_rng([options.seed, 0])  # as training's first thread draws
        results, step = {}, 0
        while step < options.steps:
            inputs, labels = sampler.batches(options.batch_size,
                                             min(options.steps_per_draw, options.steps - step))
            for batch_inputs, batch_labels in zip(inputs, labels):
                _, loss = session.run([model.optimizer, model.loss],
                                      {model.train_inputs: batch_inputs,
                                       model.train_labels: batch_labels})
                step += 1
                if step in MEASURE_AT or step == options.steps:
                    results[step] = measures(held_out, *session.run(tables), loss)
                    print(options.learning_rate, step, json.dumps(results[step]), flush=True)
        floor = held_out.floor(catalog, options) if with_floor else None
    return results, floor


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "nce_loss.json"))
    args = parser.parse_args()
    catalog = data_utils.load_catalog(args.data)
    default = TrainOptions().resolved(catalog)
    report = {"artists": len(catalog), "options": {"steps": default.steps,
                                                   "batch_size": default.batch_size,
                                                   "num_sampled": default.num_sampled,
                                                   "learning_rate": default.learning_rate},
              "uniform_guess": float(np.log(default.num_sampled + 1)
                                     + default.num_sampled * np.log1p(1 / default.num_sampled)),
              "rates": {}}
    for factor in RATE_FACTORS:
        options = TrainOptions(learning_rate=default.learning_rate * factor).resolved(catalog)
        results, floor = train_and_measure(catalog, options, with_floor=factor == 1.0)
        report["rates"][f"{options.learning_rate:g}"] = results
        report["floor"] = report.get("floor") or floor
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"floor {report['floor']:.3f}, uniform guess {report['uniform_guess']:.3f}; "
          f"written to {args.out}")


if __name__ == "__main__":
    main()
