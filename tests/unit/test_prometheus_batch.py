"""Several instant queries in one request: how they are joined, split back and grouped."""

from __future__ import annotations

from typing import Any

from modelratchet.metrics.prometheus import (
    BATCH_LABEL,
    MAX_BATCH_BYTES,
    MAX_BATCH_QUERIES,
    batch_expression,
    batches,
    split_batch,
)


def _item(tag: str | None, value: str, **labels: str) -> dict[str, Any]:
    metric = {**labels, **({BATCH_LABEL: tag} if tag is not None else {})}
    return {"metric": metric, "value": [1700000000.0, value]}


def test_each_query_is_tagged_with_its_index_and_joined_with_or() -> None:
    joined = batch_expression(["sum(a)", "max(b) / 2"])
    assert joined == (
        f'label_replace((sum(a)), "{BATCH_LABEL}", "0", "", "") '
        f'or label_replace((max(b) / 2), "{BATCH_LABEL}", "1", "", "")'
    )


def test_split_gives_each_query_what_it_would_get_alone() -> None:
    result = [
        _item("0", "0.5"),
        _item("2", "1", checkpoint="v1"),
        _item("2", "2", checkpoint="v2"),
        _item("3", "NaN"),
    ]
    value, empty, several, nan = split_batch(result, 4) or []
    assert value.values == (0.5,) and value.problem is None
    assert empty.problem is not None and empty.problem.kind == "empty"
    assert several.problem is not None and several.problem.kind == "multiple_series"
    # The tag is gone from what a message shows of the series.
    assert BATCH_LABEL not in several.problem.message and 'checkpoint="v1"' in several.problem.message
    assert nan.problem is not None and nan.problem.kind == "nan"


def test_an_answer_that_is_not_tagged_series_is_not_split() -> None:
    assert split_batch([_item(None, "1")], 1) is None, "a series without the tag"
    assert split_batch([_item("5", "1")], 2) is None, "a tag past the batch"
    assert split_batch([_item("x", "1")], 2) is None, "a tag that is not an index"
    assert split_batch([1700000000.0, "3"], 1) is None, "a scalar"
    assert split_batch([{"metric": {BATCH_LABEL: "0"}, "histogram": [0, {}]}], 1) is None, "a native histogram"


def test_batches_are_bounded_in_count_and_bytes() -> None:
    assert batches([]) == []
    assert batches(["q"] * (MAX_BATCH_QUERIES + 1)) == [list(range(MAX_BATCH_QUERIES)), [MAX_BATCH_QUERIES]]
    big = "x" * (MAX_BATCH_BYTES // 2 + 1)
    assert batches([big, big, "y"]) == [[0], [1, 2]]
    assert batches(["x" * (MAX_BATCH_BYTES + 1)]) == [[0]], "a query over the bound still goes, alone"


def test_only_queries_that_mean_the_same_in_the_wrapper_are_batched() -> None:
    ok = ['sum(rate(x{a="(", b=\'}\'}[5m]))', 'max(y{path=~"a\\"(b"})', "sum(z{q=`\\`})"]
    refused = ["sum(x))", "sum(x", "sum(x) # a comment", 'x{a="unclosed}', "x) or (y"]
    assert batches(ok + refused) == [[0, 1, 2]]
