"""The catalog of training methods (horovod_ext/methods.py): every name parses to the mode and
codec it spells, with the classes' defaults for what it leaves out; the names of the stored runs
and of the harnesses map to the same objects as before; labels and API spellings; refusals name
the part of the name that is wrong."""
import pytest

import horovod_ext as hvd_ext
from benchmarks import optimizers
from benchmarks.labels import label
from horovod_ext import methods
from horovod_ext.advisor import recommend


@pytest.mark.parametrize("name, mode, codec", [
    ("sync", hvd_ext.Sync(), None),
    ("delayed-k2+int8", hvd_ext.Delayed(staleness=2), hvd_ext.Quantize(bits=8)),
    ("localsgd-H32", hvd_ext.LocalSGD(period=32), None),
    ("easgd-H8", hvd_ext.EASGD(period=8), None),
    ("leader-H4-p0.2", hvd_ext.Leader(period=4, pull=0.2), None),
    ("diloco-H32-o1.0-m0.5+int4",
     hvd_ext.DiLoCo(period=32, outer_lr=1.0, outer_momentum=0.5), hvd_ext.Quantize(bits=4)),
    ("diloco-H16-f2-t3-a0.5-m0.7",
     hvd_ext.DiLoCo(period=16, outer_momentum=0.7, fragments=2, overlap=3, mix=0.5), None),
    ("sync+powersgd-r4", hvd_ext.Sync(), hvd_ext.PowerSGD(rank=4)),
    ("sync+powersgd-s2-r1", hvd_ext.Sync(), hvd_ext.PowerSGD(rank=1, start_step=2)),
])
def test_a_name_spells_its_mode_and_codec(name, mode, codec):
    kwargs = methods.parse(name).kwargs()
    assert kwargs["mode"] == mode
    assert kwargs.get("compression") == codec
    assert methods.parse(name).kwargs()["mode"] is not kwargs["mode"], "new objects every call"


def test_fp16_is_horovods_compressor():
    assert methods.parse("delayed+fp16").kwargs()["compression"] is hvd_ext.Compression.fp16


@pytest.mark.parametrize("old, new", [
    ("sync_fp16", "sync+fp16"), ("sync-fp16", "sync+fp16"), ("int8", "sync+int8"),
    ("powersgd_r1", "sync+powersgd-r1"), ("leader_H32", "leader-H32-p0.5"),
    ("diloco_H32_o1.0_m0.5_frag4_fp16", "diloco-H32-o1.0-m0.5-f4+fp16"),
    ("diloco_H8", "diloco-H8-o0.7-m0.9"), ("delayed2", "delayed-k2")])
def test_earlier_names_map_to_the_grammar(old, new):
    assert methods.canonical(old) == new
    assert methods.parse(old).kwargs() == methods.parse(new).kwargs()


@pytest.mark.parametrize("name, text", [
    ("diloco_H32_o1.0_m0.5_frag4_fp16",
     "DiLoCo, H=32, outer lr 1.0 / momentum 0.5, 4 fragments, fp16 pseudo-gradient"),
    ("diloco_H8", "DiLoCo, H=8, the paper's outer lr 0.7 / momentum 0.9"),
    ("diloco-H32-o1.0-m0.5-t2-a0.5+int4",
     "DiLoCo, H=32, outer lr 1.0 / momentum 0.5, overlap 2, mix 0.5, 4-bit quantization"),
    ("powersgd_r4", "PowerSGD, rank 4"), ("leader_H32", "Leader, H=32, pull 0.5"),
    ("delayed-k2+fp16", "delayed, staleness 2, fp16"), ("ddp_powersgd_r4",
                                                       "DDP + powerSGD_hook, rank 4")])
def test_labels(name, text):
    assert label(name) == text


def test_the_advisors_candidates_are_catalog_methods():
    assert recommend.HOW["diloco-H8"] == "DiLoCo(period=8, outer_lr=1.0, outer_momentum=0.5)"
    assert recommend.HOW["delayed-fp16"] == "Delayed(staleness=1), compression=Compression.fp16"
    assert recommend.shape("delayed-fp16") == ("delayed", "fp16", 1, 1)
    assert recommend.shape("localsgd-H32") == ("periodic", "fp32", 32, 0)
    assert recommend.optimizer_kwargs("powersgd") == dict(mode=hvd_ext.Sync(),
                                                          compression=hvd_ext.PowerSGD(rank=4))


def test_the_throughput_harness_takes_its_methods_from_the_catalog():
    assert optimizers.MODES["leader"] == dict(mode=hvd_ext.Leader(period=4, pull=0.2))
    assert optimizers.MODES["powersgd"]["compression"] == hvd_ext.PowerSGD(rank=4)
    assert optimizers.steady_after("powersgd") == 10 and optimizers.steady_after("sync") == 0
    assert optimizers.steady_after("ddp-powersgd") == 10  # the same settings as it trains with
    assert set(optimizers.METHODS) <= set(optimizers.MODES)


@pytest.mark.parametrize("name, needle", [
    ("dilo-H3", "unknown mode 'dilo'"), ("diloco", "diloco needs period"),
    ("leader-H4", "leader needs pull"), ("diloco-H32-x1", "unknown setting 'x1' of 'diloco'"),
    ("diloco-H32-Hx", "period must be an int or 'auto'"), ("diloco-H4-H8", "period given twice"),
    ("diloco-Hauto-t4", "leave DiLoCo.overlap at 0"),
    ("sync+zip", "unknown codec 'zip'"), ("sync+powersgd-q2", "unknown setting 'q2'"),
    ("diloco-H4-t4", "DiLoCo.overlap must be < period"), ("diloco-H4-a2", "DiLoCo.mix"),
    ("sync-H4", "unknown setting 'H4' of 'sync'"), (3, "method name must be a string")])
def test_bad_names_are_refused_naming_the_part(name, needle):
    with pytest.raises(ValueError, match=needle):
        methods.parse(name)


def test_a_method_has_one_key_whatever_its_spelling():
    assert methods.key("delayed") == methods.key("delayed-k1") == methods.key("delayed-fp16")[:1] + (
        "None",)
    assert methods.key("powersgd_r4") == methods.key("sync+powersgd-r4")
    assert methods.key("diloco-H8") == methods.key("diloco-H8-o1.0-m0.5")  # the defaults
    assert methods.key("diloco-H8") != methods.key("diloco-H8-o0.7-m0.9")
    # results stored when the defaults were the paper's keep their meaning
    assert methods.key("diloco_H8") == methods.key("diloco-H8-o0.7-m0.9")
    assert methods.key("diloco_H32_o1.0_m0.5_frag4") == methods.key("diloco-H32-f4")
    assert methods.key("sync+powersgd-r4") != methods.key("sync+powersgd-r4-s2")
