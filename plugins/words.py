"""The small English vocabulary shared by the ``smoke`` suite and the ``tiny`` model.

The smoke suite (``suite_smoke``) writes its sentences from these word lists, and the tiny
model's tokenizer (``models.tiny_tokenizer``) has one token per word of ``VOCABULARY``, so
that smoke sentences tokenize into whole words. Neither module depends on the other: both
read this one. Any other text is split into single characters by the tiny tokenizer.

Changing a list changes both the generated smoke data (its fingerprint follows by itself) and
the tiny model's token ids, and with them every smoke result (``tests/test_plugin_api.py`` pins
the list and the vocabulary, so such a change is a deliberate one).
"""

from __future__ import annotations

POSITIVE = ["good", "great", "fine", "lovely", "superb", "wonderful", "pleasant", "brilliant"]
NEGATIVE = ["bad", "awful", "poor", "dreadful", "terrible", "boring", "nasty", "weak"]
SUBJECTS = ["the movie", "the book", "the meal", "the show", "the song", "the game", "the trip", "the hotel"]
FILLER = ["really", "quite", "very", "somewhat", "today", "again", "overall", "honestly", "was", "seemed"]
ANIMALS = ["cat", "dog", "horse", "bird", "fish", "cow", "fox", "mouse"]
COLORS = ["red", "blue", "green", "black", "white", "brown", "grey", "yellow"]
SIZES = ["big", "small", "old", "young", "fast", "slow"]

# Every word above once, sorted, plus the sentence frames' "the", "is", "not", "and" and "but".
VOCABULARY = sorted(
    {w for phrase in POSITIVE + NEGATIVE + SUBJECTS + FILLER + ANIMALS + COLORS + SIZES for w in phrase.split()}
    | {"the", "is", "not", "and", "but"}
)
