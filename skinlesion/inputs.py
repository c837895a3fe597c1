"""From a decoded image to the arrays the models take: the one path for training and serving."""

from .imageio import downscale, load_image
from .preprocess import preprocess
from .regions import classifier_input, resize_mask, resize_rgb


def load_sample_image(path, resize_to=None):
    """A data set's image as taken: decoded, then resized to (height, width) where the
    stored file's aspect ratio was squashed (ISIC 2017 in ../shared)."""
    image = load_image(path)
    return resize_rgb(image, *resize_to) if resize_to else image


def load_mask(path, height, width):
    """A ground-truth mask file (any size, 0/255) as a boolean mask at (height, width)."""
    mask = load_image(path, min_side=1)[..., 0] > 127
    return resize_mask(mask, height, width)


def segmenter_input(preprocessed, input_shape):
    """(H, W, 3) uint8 for the U-Net, from an already preprocessed image."""
    height, width = input_shape[:2]
    return resize_rgb(preprocessed, height, width)


def prepare_for_segmenter(path, mask_path, steps, input_shape):
    """Training/evaluation arrays of one image: (U-Net input, mask at U-Net size)."""
    image = preprocess(load_image(path), steps)
    mask = load_mask(mask_path, *image.shape[:2])
    height, width = input_shape[:2]
    return segmenter_input(image, input_shape), resize_mask(mask, height, width)


def at_trained_resolution(image, max_image_side):
    """The image as a classifier looks at it: shrunk (area averaging) so its longer side is
    at most the side of the images it was trained on (card "max_image_side"; None: as is).

    A classifier that learnt lesions from small images sees in a sharper camera's image
    texture finer than any it was trained on (training/image_side.py)."""
    return downscale(image, max_image_side) if max_image_side else image


def prepare_for_classifier(path, mask_path, steps, crop_mode, size, resize_to=None, max_image_side=None):
    """Training/evaluation classifier input of one image, cropped by its mask file."""
    image = preprocess(at_trained_resolution(load_sample_image(path, resize_to), max_image_side), steps)
    mask = load_mask(mask_path, *image.shape[:2]) if mask_path is not None else None
    return classifier_input(image, mask, crop_mode, size)
