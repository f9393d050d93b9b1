"""Expressions over artists, such as `coil - elder ones` or `"kleenex, liliput" + !!!`: which
names are added and which taken away. Parsing takes time linear in the expression's length."""
import re

from errors import QueryError, shown

# An operator: + or - between spaces; more spaces on either side belong to it. Searched for with a
# space on each side only, as a search for every space of a run before it is quadratic in the run.
_OPERATOR = re.compile(r"\s([+-])\s")
_QUOTED_OPERATOR = re.compile(r"\s*([+-])\s*")
_SPACES = re.compile(r"\s*")
# A question adds and takes away a few artists; past this many terms it is a file pasted as one
# expression, refused in one line rather than answered with the catalog's mean.
MAX_TERMS = 1000
# Beyond a name's characters (twice them, each quote doubled), what a term takes at most: its two
# quotes and an operator with spaces; a longer expression is refused unread.
TERM_EXTRA = 8
# The most bare terms read as one name (`scott walker + sunn o)))` is two): a name of more is asked
# in quotes. It keeps the runs tried from each term a handful, whatever names a run holds.
NAME_TERMS = 8


def parse_expression(expression, known):
    """(positive names, negative names) of an expression over artists; `known` is an
    ArtistVectors (its names, the length of its longest one, the most + and - one holds).

    Terms are joined by ` + ` and ` - ` with spaces around them. A term in quotes ("..." or '...',
    a doubled quote inside standing for one) is taken as it is; unquoted, the longest run of terms
    that is one known name wins: `scott walker + sunn o)))` is one artist if the vocabulary has it.
    """
    longest = MAX_TERMS * (2 * known.longest_name + TERM_EXTRA)
    if len(expression) > longest:
        raise QueryError(f"an expression of {len(expression):,} characters is longer than any "
                         f"of {MAX_TERMS:,} artists here ({longest:,})")
    terms = _terms(expression)
    positive, negative = [], []
    i = 0
    while i < len(terms):
        sign, text, quoted, start, _ = terms[i]
        j = i
        if not quoted:
            # The longest run of bare terms i..j that spells a known name, else the term alone. No
            # run longer than the longest name, or with more operators than any name has signs,
            # can spell one; and none of more than NAME_TERMS terms is tried.
            last, most = i, min(known.most_signs, NAME_TERMS - 1)
            while (last + 1 < len(terms) and not terms[last + 1][2] and last - i < most
                   and terms[last + 1][4] - start <= known.longest_name):
                last += 1
            for end in range(last, i, -1):
                if expression[start:terms[end][4]] in known:
                    j, text = end, expression[start:terms[end][4]]
                    break
        (positive if sign == "+" else negative).append(text)
        i = j + 1
    return positive, negative


def _terms(expression):
    """[(sign, text, quoted, start, end)] of the expression's terms."""
    terms, sign = [], "+"
    position, end = len(expression) - len(expression.lstrip()), len(expression.rstrip())
    while True:
        if len(terms) == MAX_TERMS:
            raise QueryError(f"an expression takes at most {MAX_TERMS:,} artists; "
                             f"{shown(expression)} has more")
        if position >= end:
            raise QueryError(f"expected an artist name after {sign!r} in {shown(expression)}"
                             if terms else f"expected an artist name, not {shown(expression)}")
        if expression[position] in "\"'":
            text, stop = _quoted(expression, position)
            terms.append((sign, text, True, position, stop))
            if stop == end:
                return terms
            operator = _QUOTED_OPERATOR.match(expression, stop, end)
            if not operator:
                raise QueryError(f"expected + or - after {shown(expression[position:stop])} "
                                 f"in {shown(expression)}")
        else:
            operator = _OPERATOR.search(expression, position, end)
            text = expression[position:operator.start() if operator else end].rstrip()
            terms.append((sign, text, False, position, position + len(text)))
            if not operator:
                return terms
        sign, position = operator.group(1), _SPACES.match(expression, operator.end(), end).end()


def _quoted(expression, start):
    """The text of the quoted term at `start` (a doubled quote is one quote) and where it ends."""
    quote, position, parts = expression[start], start + 1, []
    while True:
        close = expression.find(quote, position)
        if close < 0:
            raise QueryError(f"unclosed {quote} in {shown(expression)}")
        parts.append(expression[position:close])
        if not expression.startswith(quote * 2, close):
            return "".join(parts), close + 1
        parts.append(quote)
        position = close + 2

