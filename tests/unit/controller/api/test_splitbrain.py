"""The API offers exactly the split-brain policies blockrepl implements."""

from __future__ import annotations

from typing import get_args

from controller.api.splitbrain import (
    AFTER_SB_0PRI,
    AFTER_SB_1PRI,
    AFTER_SB_2PRI,
    check_policy,
)
from controller.api.volume import SplitBrainPolicy


def test_literal_choices_match_blockrepl() -> None:
    fields = SplitBrainPolicy.model_fields
    assert set(get_args(fields["after_sb_1pri"].annotation)) == set(AFTER_SB_1PRI)
    assert set(get_args(fields["after_sb_2pri"].annotation)) == set(AFTER_SB_2PRI)


def test_every_api_value_is_accepted_by_blockrepl() -> None:
    for npri, values in enumerate((AFTER_SB_0PRI, AFTER_SB_1PRI, AFTER_SB_2PRI)):
        for value in values:
            assert check_policy(npri, value) is None, (npri, value)
    assert check_policy(0, "discard-node-n1") is None
    assert check_policy(1, "discard-node-n1") is not None
