"""The kernels as torch operators: torch.library.opcheck (schema, autograd registration, fake
tensors, AOT dispatch with dynamic shapes) for every operator on every device there is, the fake
implementation's checks, torch.compile over them, and training steps of a compiled model (with
compiled autograd) equal to Horovod's optimizer on the eager model, in a real 2-rank job."""
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from conftest import launch_json
from horovod_ext import ops

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not (torch.cuda.is_available() and ops.with_cuda), reason="needs a GPU and the CUDA build"))]


def samples(device):
    """Every tensor operator of hvd_ext with arguments: (name, args), dtypes the engine uses."""
    g = torch.Generator().manual_seed(0)
    r = lambda *s, dtype=torch.float32: torch.randn(*s, generator=g).to(dtype).to(device)  # noqa: E731
    ts, offs = [r(3, 4), r(5)], [0, 13]
    yield "pack", (ts, r(19), offs, 0.5)
    yield "pack", (ts, r(19, dtype=torch.float16), offs, 0.25)
    yield "unpack", (r(19), offs, ts, 0.5, True)
    yield "unpack", (r(19, dtype=torch.bfloat16), offs, ts, 1.0, False)
    yield "dc_compensate", (r(19), ts, r(19), offs, 0.1)
    yield "pull", (ts, r(19), offs, 0.3)
    yield "easgd", (ts, r(19), r(19), offs, 0.1, 2.0)
    yield "sq_norm", (ts, torch.zeros(1, device=device))
    yield "sq_norm", ([r(7, dtype=torch.float16)], torch.zeros(1, device=device))
    u8 = lambda k: torch.zeros(k, dtype=torch.uint8, device=device)  # noqa: E731
    yield "quantize", (r(50), r(50), u8(64), torch.zeros(4, device=device), 8, 16)
    yield "quantize", (r(50), None, u8(32), torch.zeros(4, device=device), 4, 16)
    yield "dequantize", (u8(64) + 130, r(4), r(50), 8, 16, 0.5, True)
    # 4 chunks of 16, k = 2: 4-bit codes (a byte a chunk), or float32 values
    i16 = lambda k: (torch.arange(k) % 16).to(torch.int16).to(device)  # noqa: E731
    yield "topk_encode", (r(50), r(50), torch.zeros(4, device=device), i16(8), u8(4), 4, 16, 2)
    yield "topk_encode", (r(50), None, torch.zeros(4, device=device), i16(8), u8(32), 32, 16, 2)
    yield "topk_decode", (r(4), i16(8), u8(4) + 0x52, r(50), 4, 16, 2, 0.5, True)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_every_operator(device):
    for name, args in samples(device):
        result = torch.library.opcheck(getattr(torch.ops.hvd_ext, name).default, args)
        assert set(result.values()) == {"SUCCESS"}, (name, result)


def test_samples_cover_every_registered_operator():
    registered = {r.split("::")[1] for r in
                  torch._C._dispatch_get_registrations_for_dispatch_key("CPU")
                  if r.startswith("hvd_ext::")}
    assert registered == {name for name, _ in samples("cpu")}
    meta = {r.split("::")[1] for r in torch._C._dispatch_get_registrations_for_dispatch_key("Meta")
            if r.startswith("hvd_ext::")}
    assert meta == registered, "every operator needs its fake (Meta) implementation"


def test_fake_implementation_checks_like_the_kernel():
    """Under FakeTensorMode nothing is computed, and bad operands fail with the kernel's message."""
    with FakeTensorMode():
        flat, t = torch.empty(10), torch.empty(4)
        ops.pack([t], flat, [2], 1.0)
        with pytest.raises(ValueError, match=r"offsets\[0\] = 8 with 4 elements does not fit"):
            ops.pack([t], flat, [8], 1.0)
        with pytest.raises(ValueError, match=r"srcs\[0\] is not contiguous"):
            ops.pack([torch.empty(4, 2).t()], flat, [0], 1.0)
        with pytest.raises(TypeError, match="snapshot has dtype Double but grad has dtype Float"):
            ops.dc_compensate(flat, [t], torch.empty(10, dtype=torch.float64), [0], 1.0)


def test_torch_compile_traces_the_operators():
    """A compiled function using the operators (fullgraph: no break) computes what eager does."""
    def step(ts, flat, out):
        ops.pack(ts, flat, [0, 12], 0.5)
        ops.pull(ts, flat, [0, 12], 0.25)
        ops.sq_norm(ts, out)
        return flat * 2, out + 1

    def inputs():
        g = torch.Generator().manual_seed(1)
        return [torch.randn(3, 4, generator=g), torch.randn(7, generator=g)], torch.zeros(19), \
            torch.zeros(1)

    want = step(*inputs())
    got = torch.compile(step, fullgraph=True)(*inputs())
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)
    assert want[1].item() > 1.0


def test_compiled_model_and_compiled_autograd_match_horovod(tmp_path_factory):
    r = launch_json("compiled_step.py", 2, "gloo", tmp_path_factory)
    for way, res in r.items():
        assert res["moved"] > 1e-3, f"{way}: training did not change the parameters"
        assert res["max_diff"] <= 1e-6, f"{way}: {res['max_diff']:.3g} from Horovod's optimizer"
    assert r["compiled_autograd"]["captures"] >= 1, "compiled autograd did not run"
