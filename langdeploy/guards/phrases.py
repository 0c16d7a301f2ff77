"""Phrases that a stream must not cut in two: where the end of a text could begin one.

Shared by the output guards that match multi-word phrases (system-prompt runs, threats, lexicon
entries) on a stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from langdeploy.guards.base import TOKEN
from langdeploy.guards.normalize import normalize


class PhraseStarts:
    """Phrases (tuples of normalised words), and where the end of a stream could be the
    beginning of one: output guards hold that back, so a phrase split across pieces is seen
    whole."""

    def __init__(
        self,
        phrases: Iterable[tuple[str, ...]],
        words: Callable[[str], list[str]] = lambda token: normalize(token).split(),
    ) -> None:
        self.words = words  # a token's words, split as the guard's own scan splits them
        self.longest = 0
        self._next: dict[tuple[str, ...], set[str]] = {}  # a phrase's start -> its next words
        for phrase in phrases:
            self.longest = max(self.longest, len(phrase))
            for k in range(len(phrase)):
                self._next.setdefault(phrase[:k], set()).add(phrase[k])

    def _could_begin(self, words: list[str], last_open: bool) -> bool:
        following = self._next.get(tuple(words[:-1]))
        if not following:
            return False
        last = words[-1]
        # The last word, still being written, need only begin a phrase's word.
        return last in following or (last_open and any(w.startswith(last) for w in following))

    def hold_from(self, text: str) -> int:
        if not self._next:
            return len(text)
        tokens = list(TOKEN.finditer(text))[-(self.longest + 1) :]
        flat = [(w, m.start()) for m in tokens for w in self.words(m.group())]
        words = [w for w, _ in flat]
        last_open = not text[-1:].isspace()
        for i, (_, start) in enumerate(flat):
            if len(flat) - i <= self.longest and self._could_begin(words[i:], last_open):
                return start
        return len(text)
