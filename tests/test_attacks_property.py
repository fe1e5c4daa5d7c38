"""Trajectory documents with extreme finite numbers and deep nesting: ingest-then-cycle never raises."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import run_main
from tests.helpers import trajectory_doc

numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-10**30, 10**30),
                    st.sampled_from([1e308, -1e308, 5e-324, 1e6, -1e6, 1e9, 0.0, True, "0.5", None]))
nested = st.recursive(st.one_of(numbers, st.text(max_size=5)),
                      lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(st.text(max_size=3),
                                                                                           inner, max_size=2)),
                      max_leaves=60)


def deep(levels):
    value = {}
    for _ in range(levels):
        value = {"x": value}
    return value


@settings(max_examples=8, deadline=None)
@given(st.lists(st.tuples(numbers, numbers, numbers, numbers, nested, st.integers(0, 60)), min_size=1, max_size=6))
def test_ingest_then_cycle_never_raises(tmp_path_factory, rows):
    base = tmp_path_factory.mktemp("prop") / "store"
    lines = []
    for number, (reward, latency, propensity, score, metadata, depth) in enumerate(rows):
        document = trajectory_doc()
        document["trajectory_id"] = f"p-{number}"
        document["outcome"].update(reward=reward, latency_ms=latency)
        document["decision"]["propensity"] = propensity
        document["candidates"][0]["score"] = score
        document["task"]["metadata"] = {"m": metadata, "d": deep(depth)}
        lines.append(json.dumps(document))
    lines += [json.dumps({**trajectory_doc(), "trajectory_id": f"ok-{n}"}) for n in range(5)]
    source = base.parent / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    code, printed, stderr = run_main("--base-dir", base, "--ingest", source)
    assert code == 0, stderr
    result = json.loads(printed)
    assert result["stored_count"] + result["invalid_count"] == len(lines)
    for args in (["--dry-run"], []):
        code, printed, stderr = run_main("--base-dir", base, "--min-new-trajectories", "0", *args)
        assert code == 0 and "unexpected" not in stderr, stderr
    assert run_main("--base-dir", base, "--check")[0] == 0
