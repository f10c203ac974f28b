"""A regular expression that matches exactly a set of names, written compactly: the study's variants as
a wildcard constraint (workflow/rules/common.smk).

Snakemake copies a wildcard's constraint into every file pattern that names the wildcard and scans it
each time it applies wildcards: "a|b|c" over the 1,000 variants of a sweep (lrstudy/grid.py) made that
scan most of the time `snakemake -n` took. As a trie, each shared prefix is written once: a sweep's names
share most of theirs (lr0.1_wd0.0005, lr0.1_wd0.001, ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_END = ""  # a trie node's key where a name ends


def one_of(names: Iterable[str]) -> str:
    """A regex (no anchors, no groups that capture) that matches exactly the given names."""
    trie: dict = {}
    for name in names:
        node = trie
        for ch in name:
            node = node.setdefault(ch, {})
        node[_END] = {}
    return _pattern(trie) if trie else "(?!)"


def _pattern(node: dict) -> str:
    branches = []
    for ch, child in sorted((k, v) for k, v in node.items() if k != _END):
        text = re.escape(ch)
        while len(child) == 1 and _END not in child:  # a chain of single children: one literal
            ((ch, child),) = child.items()
            text += re.escape(ch)
        branches.append(text + _pattern(child))
    if not branches:
        return ""
    ends_here = _END in node
    if len(branches) == 1 and not ends_here:
        return branches[0]
    return "(?:" + "|".join(branches) + ")" + ("?" if ends_here else "")
