"""Model cards, checked loading, builders and initialisation errors."""
import shutil

import keras
import pytest

from skinlesion.cards import ModelFileError, read_card
from skinlesion.models import load_checked_model
from training.builders import build_classifier, freeze_through, initialise_backbone


def test_checked_load_refuses_a_changed_file(tiny_models, tmp_path):
    copy = tmp_path / "unet.h5"
    shutil.copy(tiny_models / "unet.h5", copy)
    shutil.copy(tiny_models / "unet.json", tmp_path / "unet.json")
    load_checked_model(copy)
    with open(copy, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ModelFileError, match="does not match its card"):
        load_checked_model(copy)


def test_missing_model_or_card_is_named(tmp_path):
    with pytest.raises(ModelFileError, match="missing.*nothing.h5"):
        load_checked_model(tmp_path / "nothing.h5")
    (tmp_path / "lonely.h5").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="card missing"):
        load_checked_model(tmp_path / "lonely.h5")


def test_cards_have_the_required_fields(tiny_models):
    card = read_card(tiny_models / "classifier_3class.h5")
    assert [c["code"] for c in card["classes"]] == ["bcc", "mel", "nv"]
    assert len(card["sha256"]) == 64


@pytest.mark.parametrize("arch, last_conv", [("mobilenetv2", "out_relu"), ("sequential", "last_conv")])
def test_classifiers_are_flat_with_logits(arch, last_conv):
    model = build_classifier(arch, 3, 64)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.get_layer("logits").units == 3 and model.get_layer(last_conv)


def test_imagenet_offline_gives_a_clear_message(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no network")
    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    model = build_classifier("sequential", 3, 64)
    with pytest.raises(ModelFileError, match="Could not download the ImageNet weights.*--init PATH"):
        initialise_backbone(model, "imagenet", 64)


def test_init_from_a_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        initialise_backbone(build_classifier("sequential", 3, 64), str(tmp_path / "x.h5"))


def test_freeze_through():
    model = build_classifier("mobilenetv2", 3, 64)
    count = freeze_through(model, "block_5_add")
    assert not model.get_layer("Conv1").trainable and model.get_layer("block_6_expand").trainable
    assert count > 10
    with pytest.raises(ValueError):
        freeze_through(model, "no_such_layer")
