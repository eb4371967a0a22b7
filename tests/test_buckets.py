"""The bucket plan is a pure function: check its invariants on random inputs and its edges."""
import random

import pytest
import torch

import horovod_ext as hvd_ext
from horovod_ext.codecs import codec_for
from horovod_ext.engine.bucket import Bucket
from horovod_ext.engine.plan import MB, bucket_caps, plan_buckets, split_groups


def check_plan(buckets, numels, sizes, keys, order, cap, first_cap):
    flat = [i for b in buckets for i in b]
    assert sorted(flat) == sorted(order), "every tensor in exactly one bucket"
    pos = {i: k for k, i in enumerate(order)}
    firsts = [pos[b[0]] for b in buckets]
    assert firsts == sorted(firsts), "buckets sorted by their first tensor's ready position"
    seen_keys = {}
    for b in buckets:
        assert len({keys[i] for i in b}) == 1, "one key (dtype, device) per bucket"
        assert [pos[i] for i in b] == sorted(pos[i] for i in b), "ready order inside a bucket"
        nbytes = [numels[i] * sizes[i] for i in b]
        k = keys[b[0]]
        limit = first_cap if k not in seen_keys else cap
        seen_keys[k] = True
        # A bucket only grows past its cap with its last tensor.
        assert sum(nbytes[:-1]) < limit


@pytest.mark.parametrize("seed", range(30))
def test_random_plans_keep_invariants(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 200)
    numels = [rng.choice([0, 1, 7, 1000, 250_000, rng.randint(1, 5000)]) for _ in range(n)]
    sizes = [rng.choice([2, 4, 8]) for _ in range(n)]
    keys = [(s, rng.choice(["cpu", "cuda:0"])) for s in sizes]
    order = list(range(n))
    rng.shuffle(order)
    cap, first_cap = rng.choice([1, 100, 4096, 1 << 20]), rng.choice([1, 512, 1 << 18])
    buckets = plan_buckets(numels, sizes, keys, order, cap, first_cap)
    check_plan(buckets, numels, sizes, keys, order, cap, first_cap)


def test_small_first_bucket_then_cap():
    # 10 tensors of 100 bytes; first bucket closes at 250 bytes (3 tensors), then every 400.
    buckets = plan_buckets([25] * 10, [4] * 10, ["k"] * 10, list(range(9, -1, -1)), 400, 250)
    assert buckets == [[9, 8, 7], [6, 5, 4, 3], [2, 1, 0]]


def test_large_tensor_gets_own_bucket_and_keys_split():
    buckets = plan_buckets([10, 10_000, 10, 10], [4, 4, 8, 4], ["f", "f", "d", "f"],
                           [0, 1, 2, 3], 1000, 1000)
    assert buckets == [[0, 1], [2], [3]]


@pytest.mark.parametrize("total, cap", [(0, MB // 4), (MB, MB // 4), (11 * MB, 11 * MB // 32),
                                        (100 * MB, 100 * MB // 32), (4000 * MB, 25 * MB)])
def test_automatic_cap_gives_about_32_buckets_within_bounds(total, cap):
    assert bucket_caps(None, 1, total) == (cap, min(cap, MB))
    numels = [total // 4 // 1000] * 1000  # many equal tensors: the count follows the cap
    buckets = plan_buckets(numels, [4] * 1000, ["k"] * 1000, list(range(1000)),
                           *bucket_caps(None, 1, total))
    if MB // 4 < cap < 25 * MB and numels[0]:
        assert 30 <= len(buckets) <= 34


def test_explicit_cap_is_kept_and_first_bucket_never_larger():
    assert bucket_caps(25, 1, 10 * MB) == (25 * MB, MB)
    assert bucket_caps(0.5, 1, 10 * MB) == (MB // 2, MB // 2)


def test_order_must_be_a_permutation():
    with pytest.raises(ValueError, match="permutation"):
        plan_buckets([1, 1], [4, 4], ["k", "k"], [0, 0], 10, 10)


def test_split_groups_like_horovod():
    params = [torch.zeros(3) for _ in range(7)] + [torch.zeros(2, dtype=torch.float64)]
    assert split_groups(3, params) == [[0, 1, 2], [3, 4, 5], [6], [7]]
    assert split_groups([[params[2], params[0]], [params[7], params[5]]], params) == \
        [[2, 0], [7], [5], [1], [3], [4], [6]]


def test_bucket_adopts_replaced_and_missing_grads():
    ps = [torch.nn.Parameter(torch.zeros(2, 3)), torch.nn.Parameter(torch.zeros(4))]
    ps[0].grad = torch.ones(2, 3)          # a gradient that existed before the bucket
    b = Bucket(0, ps, codec_for(hvd_ext.Compression.none))
    b.adopt_grads()
    assert ps[0].grad.data_ptr() == b.flat.data_ptr()
    assert b.flat.tolist() == [1.0] * 6 + [0.0] * 4
    ps[1].grad = torch.full((4,), 2.0)     # replaced by user code: copied in, never dropped
    ps[0].grad = None                      # set to None: becomes zeros
    b.adopt_grads()
    assert b.flat.tolist() == [0.0] * 6 + [2.0] * 4
    assert ps[1].grad.data_ptr() == b.flat.data_ptr() + 6 * 4
    assert b.codec_state is None
    assert Bucket(1, ps, codec_for(hvd_ext.Compression.fp16)).codec_state.dtype == torch.float16
