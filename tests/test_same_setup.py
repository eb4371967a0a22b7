"""Construction-time same-setup check: ranks that wrap different parameters or pass different
arguments all raise a ValueError naming the first difference and the ranks, within seconds."""
import json

import pytest

from conftest import MPI, launch


@pytest.fixture(scope="module", params=["gloo", pytest.param("mpi", marks=MPI)])
def outcomes(request):
    out = launch("same_setup_mismatch.py", 2, request.param, timeout=120).stdout
    decoder, rows, at = json.JSONDecoder(), [], out.find('{"case"')
    while at >= 0:  # the ranks' lines may interleave
        row, end = decoder.raw_decode(out, at)
        rows.append(row)
        at = out.find('{"case"', end)
    return {(r["case"], r["rank"]): r for r in rows}


@pytest.mark.parametrize("case, needles", [
    ("shape", ["position 2", "'1.weight' with shape [2, 3]", "rank 1 has '1.weight' with shape [5, 3]"]),
    ("count", ["parameter counts differ: rank 0 has 2, rank 1 has 4", "rank 1 has"]),
    ("mode", ["mode is 'Delayed(staleness=1, compensation=0.0)' on rank 0",
              "rank 1 has 'Delayed(staleness=2, compensation=0.0)'"]),
    ("bucket", ["bucket_cap_mb is '25' on rank 0, but rank 1 has '0'"]),
])
def test_every_rank_raises_naming_the_difference(outcomes, case, needles):
    for rank in (0, 1):
        r = outcomes[(case, rank)]
        assert r["error"] is not None, f"rank {rank} did not raise in case {case}"
        for needle in needles:
            assert needle in r["error"], (needle, r["error"])
        assert r["seconds"] < 5


def test_agreeing_ranks_pass(outcomes):
    assert outcomes[("same", 0)]["error"] is None and outcomes[("same", 1)]["error"] is None
