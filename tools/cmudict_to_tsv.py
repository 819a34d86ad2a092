#!/usr/bin/env python3
"""Turns CMUdict (`word PH ON EMES` lines, alternative pronunciations marked `word(2)`,
comments after `#`) into `word<TAB>PH ON EMES` pairs for `unfold train --pairs`. Only the
first pronunciation of each word is kept, so a word never appears on both sides of a split.

    python3 tools/cmudict_to_tsv.py ../shared/data/seq2seq/cmudict/cmudict.dict > cmudict.tsv
    unfold train --pairs cmudict.tsv --out runs/g2p
"""
import sys

seen = set()
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        word, _, phones = line.partition(" ")
        if "(" in word or word in seen or not phones:
            continue
        seen.add(word)
        print(f"{word}\t{phones.strip()}")
