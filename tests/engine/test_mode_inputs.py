"""What a file engine is asked to run beyond the chained pass (gpt2core.verification.mode_inputs): the split where
decoding starts, the unrelated request, and the files every reference set carries for each case."""

from __future__ import annotations

import numpy as np
import pytest

from gpt2core.verification.cases import Case
from gpt2core.verification.mode_inputs import Unrelated, default_split, unrelated_ids, write_mode_inputs
from gpt2core.verification.sampling import SamplingSettings


@pytest.mark.parametrize(("mask", "T", "split"), [
    (None, 1, 1), (None, 2, 1), (None, 3, 1), (None, 9, 4), (None, 10, 5),
    ([[1, 1, 1, 1]], 4, 1),  # a mask of ones: the first column is already all tokens
    ([[0, 0, 1, 1], [1, 1, 1, 1]], 4, 3),  # decoding starts after the first column where every row has a token
    ([[0, 0, 0, 1], [0, 1, 1, 1]], 4, 3),  # ... and before the last position, so one step is decoded
])  # fmt: skip
def test_decoding_starts_after_the_first_column_every_row_holds_a_token(mask, T, split):
    ids = np.zeros((1 if mask is None else len(mask), T), dtype=np.int64)
    case = Case("c", ids, None if mask is None else np.array(mask, dtype=np.int64))
    assert default_split(case) == split


def test_the_unrelated_request_differs_at_every_token_and_stays_in_the_vocabulary():
    ids = np.array([[0, 5, 9]], dtype=np.int64)
    assert unrelated_ids(ids, 10).tolist() == [[1, 6, 0]]
    case = Case("c", ids, np.array([[0, 1, 1]], dtype=np.int64))
    other = Unrelated(case, 10)
    assert other.name == "c-unrelated" and other.input_ids.tolist() == [[1, 6, 0]]
    assert other.attention_mask is case.attention_mask and np.array_equal(other.position_ids, case.position_ids)


def test_every_case_gets_its_mode_inputs_as_npy_files(tmp_path):
    case = Case("c", np.array([[3, 4, 5], [0, 7, 8]], dtype=np.int64), np.array([[1, 1, 1], [0, 1, 1]], dtype=np.int64))
    settings = SamplingSettings(0.8, 40, 0.9, 0, 2)
    path = np.array([[3, 4, 5, 11, 12], [0, 7, 8, 13, 14]])
    write_mode_inputs(tmp_path, case, 50, 8, (settings, path))
    read = {f.stem: np.load(f, allow_pickle=False) for f in tmp_path.glob("*.npy")}
    assert sorted(read) == ["decode_split", "generate_tokens", "sample_ids", "sample_settings", "unrelated_ids"]
    assert read["decode_split"].dtype == np.dtype("<i8") and read["decode_split"].tolist() == [2]
    assert read["unrelated_ids"].tolist() == [[4, 5, 6], [1, 8, 9]] and read["unrelated_ids"].dtype == np.dtype("<i8")
    assert read["generate_tokens"].tolist() == [8]
    assert read["sample_ids"].tolist() == path.tolist() and read["sample_ids"].dtype == np.dtype("<i8")
    assert read["sample_settings"].dtype == np.dtype("<f8") and read["sample_settings"].tolist() == [0.8, 40.0, 0.9]


def test_a_case_without_generation_gets_only_the_cached_modes_inputs(tmp_path):
    write_mode_inputs(tmp_path, Case("c", np.array([[1, 2]], dtype=np.int64)), 50, None, None)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["decode_split.npy", "unrelated_ids.npy"]


def test_the_files_dtypes_are_the_contracts_whatever_the_callers_types(tmp_path):
    """Token files are int64 and the settings float64 even when the caller hands int32 ids and whole-number
    settings (a SamplingSettings made in Python rather than read with from_dict)."""
    case = Case("c", np.array([[3, 4, 5]], dtype=np.int64))
    write_mode_inputs(tmp_path, case, 50, 2, (SamplingSettings(2, 0, 1, 0, 2), np.array([[3, 4, 5, 6, 7]], dtype=np.int32)))
    read = {f.stem: np.load(f, allow_pickle=False) for f in tmp_path.glob("*.npy")}
    assert {name: a.dtype.str for name, a in read.items()} == {"decode_split": "<i8", "unrelated_ids": "<i8",
                                                               "generate_tokens": "<i8", "sample_ids": "<i8",
                                                               "sample_settings": "<f8"}  # fmt: skip
    assert read["sample_settings"].tolist() == [2.0, 0.0, 1.0]
