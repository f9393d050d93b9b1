"""Ensembles of seeds: a run of N members that differ only in their seeds, stored as one matrix.

One model's neighbours are largely a draw of its seed (Antoniak and Mimno, TACL 2018); the mean of
several members' cosine similarities is steadier. The run stores each member's unit vectors side by
side, scaled by 1/sqrt(N): a row has norm 1 and the dot product of two rows is the mean of the
members' cosines, so every reader of vectors (queries, the projector, t-SNE, gensim) sees the mean
without knowing there are members, and the members come back by splitting the columns (N is in
run.json). One model (N = 1) is stored as the tutorial's table, untouched. Answers say how far
the members agree (EnsembleQueries.certainty). Numpy only.
"""
import numpy as np

import checks
from errors import QueryError, RunError
from nearest import top_k
from norms import unit


def member_seeds(seed, members):
    """Each member's seed: member 0 is the single model of `seed`; the others' seeds are hashed
    from (seed, member), so ensembles of different --seed (0 and 1, or 0 and 1000) share none."""
    return [seed] + [int(np.random.SeedSequence([seed, member]).generate_state(1)[0])
                     for member in range(1, members)]


def combined(tables, members):
    """The run's vectors from its members' tables side by side (artists x members * dimensions):
    one model's table as it is; else each member's rows made unit, all scaled by 1/sqrt(members)."""
    if members == 1:
        return tables
    blocks = np.split(np.asarray(tables, np.float32), members, axis=1)
    scale = np.float32(1 / np.sqrt(members))
    return np.hstack([unit(block) for block in blocks]) * scale


def member_vectors(vectors, members):
    """The members' unit vectors (members x artists x dimensions) from a run's stored vectors; a
    RunError if the columns do not split into `members` equal parts."""
    if vectors.shape[1] % members:
        raise RunError(f"{vectors.shape[1]} vector columns do not split into {members} members")
    blocks = np.stack(np.split(np.asarray(vectors, np.float32), members, axis=1))
    return unit(blocks)


def member_similarities(vectors, members, ids, signs):
    """Each member's cosine similarity (members x artists) to the signed sum of the rows `ids`,
    a member's columns at a time: the stored blocks' rows are unit / sqrt(members) already, and a
    copy of every member's vectors would be gigabytes at a million artists."""
    similarity = np.empty((members, len(vectors)), np.float32)
    for member, block in enumerate(np.split(np.asarray(vectors, np.float32), members, axis=1)):
        target = signs @ block[ids]
        similarity[member] = block @ unit(target) \
            * np.float32(np.sqrt(members))
    return similarity


class EnsembleQueries:
    """An ensemble's certainty in its answers, for ArtistVectors: a class with `vectors`, `members`
    (how many side by side in `vectors`), `index(name)`, `weighted_target` and `__len__`."""

    def certainty(self, positive, negative, answers, topn):
        """For each artist of `answers` to most_similar(positive, negative, topn): in how many
        members' `topn` nearest it is, and the spread (standard deviation) of its similarity across
        members, {"members": N, "in_members_top_k": n, "similarity_spread": s}; for one model,
        which cannot tell, {}."""
        from keyed_vectors import key_list

        positive, negative = key_list(positive, "positive"), key_list(negative, "negative")
        answers, topn = key_list(answers, "answers"), checks.whole("topn", topn, 1)
        # Nothing asked, or a question that cancels out, is refused as most_similar refuses it.
        self.weighted_target(positive, negative)
        if self.members == 1:
            return [{} for _ in answers]
        ids = [self.index(name) for name in positive + negative]
        signs = np.array([1.0] * len(positive) + [-1.0] * len(negative), np.float32)
        with np.errstate(over="ignore", invalid="ignore"):  # damaged vectors are refused below
            similarity = member_similarities(self.vectors, self.members, ids, signs)
        if not np.isfinite(similarity).all():
            raise QueryError("the members' similarities are not numbers: the run's vectors.npy "
                             "is damaged")
        rows = [self.index(name) for name in answers]
        spread = similarity[:, rows].std(axis=0)  # before the asked rows are left out below
        similarity[:, ids] = -np.inf
        top = top_k(similarity, max(0, min(topn, len(self) - len(set(ids)))))
        in_top = (top[:, :, None] == np.array(rows)[None, None, :]).any(axis=1).sum(axis=0)
        return [{"members": self.members, "in_members_top_k": int(count),
                 "similarity_spread": round(float(deviation), 6)}
                for count, deviation in zip(in_top, spread)]


def certainty_text(certainty, topn):
    """EnsembleQueries.certainty() of one answer as an answer line's end: `, In the top 10 of 4/5
    members, Spread: 0.031`; nothing for one model."""
    if not certainty:
        return ""
    return (f", In the top {topn} of {certainty['in_members_top_k']}/{certainty['members']} "
            f"members, Spread: {certainty['similarity_spread']:.3f}")
