import pytest
import torch

from lrstudy.train.augment import MEAN, STD, Normalize, crop_flip, draw_epoch
from lrstudy.train.model import ResNet18, parameter_count


@pytest.fixture(scope="module")
def tv():
    """torchvision, the oracle, imported only when its tests run: at collection it cost every pytest worker
    ~2.6 CPU-s, in the fast tier too."""
    import torchvision

    return torchvision


def test_crop_flip_equals_torchvision_for_the_same_offsets(tv):
    TF = tv.transforms.functional
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g)
    _, top, left, flip = draw_epoch(g, 64)
    ours = crop_flip(images, top, left, flip)
    for i in range(64):
        # RandomCrop(32, padding=4) pads with zeros and crops at (top, left) of the 40x40 image.
        ref = TF.crop(TF.pad(images[i], [4]), int(top[i]), int(left[i]), 32, 32)
        if flip[i]:
            ref = TF.hflip(ref)
        assert torch.equal(ours[i], ref), i
    assert top.min() == 0 and top.max() == 8 and 0.3 < flip.float().mean() < 0.7


def test_torchvision_random_crop_draws_offsets_in_the_same_range(tv):
    # RandomCrop.get_params on the padded image: offsets 0..8 inclusive, as draw_epoch uses.
    padded = torch.zeros(3, 40, 40)
    offsets = {tv.transforms.RandomCrop.get_params(padded, (32, 32))[0] for _ in range(2000)}
    assert offsets == set(range(9))


def test_normalize_equals_to_tensor_and_normalize(tv):
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    ours = Normalize(torch.device("cpu"), torch.float32, channels_last=False)(images)
    ref = tv.transforms.functional.normalize(images.float() / 255.0, MEAN, STD)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_resnet18_shape_and_parameter_count():
    assert parameter_count(ResNet18(width=64)) == 11_173_962
    model = ResNet18(width=8)
    assert model(torch.zeros(5, 3, 32, 32)).shape == (5, 10)
    assert parameter_count(model) == pytest.approx(11_173_962 / 64, rel=0.05)  # conv weights scale with w^2
    # The CIFAR stem: 3x3 stride 1, no max-pool, so the first stage sees 32x32 maps.
    stem = model.stem[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
