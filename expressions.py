"""Expressions over artists, such as `coil - elder ones` or `"kleenex, liliput" + !!!`: which
names are added and which taken away."""
import re

from errors import QueryError

_OPERATOR = re.compile(r"\s+([+-])\s+")
_QUOTED_OPERATOR = re.compile(r"\s*([+-])\s*")


def parse_expression(expression, known):
    """(positive names, negative names) of an expression over artists.

    Terms are joined by ` + ` and ` - ` with spaces around them. A term in quotes ("..." or '...',
    a doubled quote inside standing for one) is taken as it is; unquoted, the longest run of terms
    that is one known name wins: `scott walker + sunn o)))` is one artist if the vocabulary has it.
    """
    terms = _terms(expression)
    positive, negative = [], []
    i = 0
    while i < len(terms):
        sign, text, quoted, start, _ = terms[i]
        j = i
        if not quoted:
            # The longest run of bare terms i..j that spells a known name, else the term alone.
            for last in range(len(terms) - 1, i, -1):
                if (all(not t[2] for t in terms[i:last + 1])
                        and expression[start:terms[last][4]] in known):
                    j, text = last, expression[start:terms[last][4]]
                    break
        (positive if sign == "+" else negative).append(text)
        i = j + 1
    return positive, negative


def _terms(expression):
    """[(sign, text, quoted, start, end)] of the expression's terms."""
    terms, sign = [], "+"
    position, end = len(expression) - len(expression.lstrip()), len(expression.rstrip())
    while True:
        if position >= end:
            raise QueryError(f"expected an artist name after {sign!r} in {expression!r}")
        if expression[position] in "\"'":
            text, stop = _quoted(expression, position)
            terms.append((sign, text, True, position, stop))
            if stop == end:
                return terms
            operator = _QUOTED_OPERATOR.match(expression, stop, end)
            if not operator:
                raise QueryError(f"expected + or - after {expression[position:stop]} "
                                 f"in {expression!r}")
        else:
            operator = _OPERATOR.search(expression, position, end)
            stop = operator.start() if operator else end
            terms.append((sign, expression[position:stop], False, position, stop))
            if not operator:
                return terms
        sign, position = operator.group(1), operator.end()


def _quoted(expression, start):
    """The text of the quoted term at `start` (a doubled quote is one quote) and where it ends."""
    quote, position, parts = expression[start], start + 1, []
    while True:
        close = expression.find(quote, position)
        if close < 0:
            raise QueryError(f"unclosed {quote} in {expression!r}")
        parts.append(expression[position:close])
        if not expression.startswith(quote * 2, close):
            return "".join(parts), close + 1
        parts.append(quote)
        position = close + 2

