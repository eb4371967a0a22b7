"""The DiLoCo text experiment's method names (benchmarks/science/diloco_text.py) and the
deeper text model it uses to show fragments: names map to the mode's fields, bad names fail
before any training, and fragments of the 3-layer model split its bytes nearly evenly."""
import pytest

import horovod_ext as hvd_ext
from benchmarks.science.diloco_text import DEFAULT_METHODS, method
from benchmarks.tasks import CharMLP


def test_a_diloco_name_spells_every_field():
    spec = method("diloco_H32_o1.0_m0.5_frag4_fp16")
    assert spec["mode"] == hvd_ext.DiLoCo(period=32, outer_lr=1.0, outer_momentum=0.5,
                                          fragments=4)
    assert spec["compression"] is hvd_ext.Compression.fp16


def test_fields_left_out_are_the_modes_defaults():
    spec = method("diloco-H8")
    assert spec == dict(mode=hvd_ext.DiLoCo(period=8))
    assert spec["mode"].outer_lr == 1.0 and spec["mode"].outer_momentum == 0.5
    # a name stored when the defaults were the paper's keeps them
    assert method("diloco_H8") == dict(mode=hvd_ext.DiLoCo(period=8, outer_lr=0.7,
                                                           outer_momentum=0.9))


@pytest.mark.parametrize("name, needle", [("diloco", "needs period"),
                                           ("diloco_H32_x", "unknown mode 'diloco_H32_x'"),
                                           ("localsgd", "needs period")])
def test_an_unknown_name_is_refused_by_name(name, needle):
    with pytest.raises(ValueError, match=f"--methods: .*{needle}"):
        method(name)


def test_catalog_names_and_stored_names_are_the_same_method():
    assert method("localsgd_H8") == method("localsgd-H8") == dict(mode=hvd_ext.LocalSGD(period=8))
    assert method("diloco_H32_m0.5_o1.0") == method("diloco-H32-o1.0-m0.5")


def test_an_invalid_field_is_refused_by_the_mode():
    with pytest.raises(ValueError, match="DiLoCo.outer_momentum"):
        method("diloco_H32_m1.5")


def test_every_default_method_resolves():
    assert all("mode" in method(name) for name in DEFAULT_METHODS)


def fragment_bytes(model, fragments):
    params = list(model.parameters())
    sizes = [0] * fragments
    for j, p in enumerate(params):
        sizes[j * fragments // len(params)] += p.numel() * p.element_size()
    return sizes


def test_three_hidden_layers_split_into_four_nearly_even_fragments():
    one, three = CharMLP(95), CharMLP(95, hidden_layers=3)
    assert len(list(three.parameters())) == 9
    # One hidden layer: a single tensor holds most bytes, so 4 fragments cut the peak < 1.5x.
    assert sum(fragment_bytes(one, 4)) / max(fragment_bytes(one, 4)) < 1.5
    assert sum(fragment_bytes(three, 4)) / max(fragment_bytes(three, 4)) > 3.2
