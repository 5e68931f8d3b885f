"""Compiling a validated rule set into the Rulebook's arrays: one row per action, one column per channel,
the eligibility program and the cap table, so that a decision is numpy over all actions at once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nba.rules.caps import CapRow, CapTable
from nba.rules.conditions import AttributeType
from nba.rules.learning_settings import Learning
from nba.rules.program import compile_program
from nba.rules.rulebook import Action, Channel, ContactLimit, Rulebook, Segment


def content_hash(directory: Path, files: list[Path], only: tuple[str, ...] | None = None) -> str:
    h = hashlib.sha256()
    for p in files:
        rel = p.relative_to(directory).as_posix()
        if only is not None and rel not in only:
            continue
        h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Sections:
    """What the files of a valid rule set say (load.py reads them), before compiling."""

    channels: dict[str, Channel]
    attributes: dict[str, AttributeType]
    list_values: dict[str, tuple[str, ...]]
    segments: list[Segment]
    actions: list[Action]
    groups: dict[str, float]  # group -> weight
    learning: Learning
    contact: ContactLimit | None
    cap_rows: list[CapRow]


def compile_rulebook(directory: Path, files: list[Path], sections: Sections) -> Rulebook:
    """The Rulebook of the rule set in `files` of `directory` (their content is its version)."""
    s = sections
    channels, actions, groups, segments = s.channels, s.actions, s.groups, s.segments
    group_names = tuple(groups)
    channel_names = tuple(channels)
    n = len(actions)
    group_of = np.array([group_names.index(a.group) for a in actions], np.int64)
    value = np.array([a.value for a in actions], np.float64)
    weight = np.array([a.weight * groups[a.group] for a in actions], np.float64)
    channel_ok = np.zeros((n, len(channel_names)), bool)
    for i, a in enumerate(actions):
        for ch in a.channels:
            channel_ok[i, channel_names.index(ch)] = True
    segment_names = [s.name for s in segments]
    return Rulebook(
        version=content_hash(directory, files),
        segments_version=content_hash(directory, files, ("profile.yaml", "segments.yaml")),
        channels=channels,
        attributes=s.attributes,
        list_values=s.list_values,
        segments=tuple(segments),
        actions=tuple(actions),
        groups=group_names,
        group_weights=dict(groups),
        learning=s.learning,
        contact=s.contact,
        caps=CapTable.build(s.cap_rows),
        program=compile_program([a.condition for a in actions], segment_names),
        group_of=group_of,
        value=value,
        weight=weight,
        lever=value * weight,
        active_from=np.array([a.active_from for a in actions]),
        active_until=np.array([a.active_until for a in actions]),
        channel_ok=channel_ok,
        no_action=np.array([a.kind == "no_action" for a in actions], bool),
        mandatory=np.array([a.mandatory for a in actions], bool),
        prior_alpha=np.array([a.prior[0] for a in actions]),
        prior_beta=np.array([a.prior[1] for a in actions]),
        cost=np.array([a.cost for a in actions], np.float64),
        files=tuple(p.relative_to(directory).as_posix() for p in files),
        action_index={a.id: i for i, a in enumerate(actions)},
        channel_index={c: i for i, c in enumerate(channel_names)},
        segment_index={s: i for i, s in enumerate(segment_names)},
    )
