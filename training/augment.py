"""tf.data augmentations. Geometry is applied to image and mask together; colour to the image.

Recipes for the classifier: `basic` (flips, rotation, small zoom, mild colour jitter on
the whole batch), `lamp` (basic geometry, another lamp and sensor colour per image) and
`other_clinic` (one random camera per image: its lamp, optics, sensor,
compression and dermatoscope frame; the lesion at any angle and any size from a fifth to
nine tenths of the crop), aimed at what differs between clinics; `framing` and `optics` are
other_clinic's non-colour parts, each alone.
"""
import tensorflow as tf
import keras


def color_jitter(image, strength=1.0):
    """Brightness, contrast, saturation and hue changes on a 0-255 float image.

    Cameras and lamps differ between clinics; jittering colour is the cheapest way to
    make the models care less about it.
    """
    image = image / 255.0
    image = tf.image.random_brightness(image, 0.12 * strength)
    image = tf.image.random_contrast(image, 1 - 0.2 * strength, 1 + 0.2 * strength)
    image = tf.image.random_saturation(image, 1 - 0.25 * strength, 1 + 0.25 * strength)
    image = tf.image.random_hue(image, 0.03 * strength)
    return tf.clip_by_value(image, 0.0, 1.0) * 255.0


def flips(stacked, square):
    stacked = tf.image.random_flip_left_right(stacked)
    stacked = tf.image.random_flip_up_down(stacked)
    if square:
        stacked = tf.image.rot90(stacked, tf.random.uniform([], 0, 4, dtype=tf.int32))
    return stacked


def geometry_layers(rotation, zoom, fill_mode="reflect"):
    """Rotations (a fraction of a full turn) and zooms (a factor, or a (low, high) pair:
    positive zooms out)."""
    zoom = zoom if isinstance(zoom, tuple) else (-zoom, zoom)
    return keras.Sequential([
        keras.layers.RandomRotation(rotation, fill_mode=fill_mode),
        keras.layers.RandomZoom(zoom, fill_mode=fill_mode),
    ])


# --- other clinics' cameras, one image at a time (0-1 floats) ---------------------------

# Serving crops put the lesion's box, grown by 15% a side, in the crop: the box fills about
# 0.77 of the side. Zooming by 1/1.23 .. 1/0.58 makes it fill 0.45 .. 0.95 of the side, i.e.
# a fifth to nine tenths of the crop's area: other clinics frame lesions tighter or looser,
# and the U-Net's masks on their images are larger or smaller than the lesion.
LESION_ZOOM = (-0.19, 0.72)


def _uniform(low, high, shape=()):
    return tf.random.uniform(shape, low, high)


def _sometimes(probability, function, image):
    return tf.cond(_uniform(0.0, 1.0) < probability, lambda: function(image), lambda: image)


def lamp(image):
    """Another lamp and sensor colour response: per-channel gains, brightness, contrast,
    saturation, hue and gamma."""
    gains = tf.exp(_uniform(-0.12, 0.12, [3]))
    image = tf.clip_by_value(image * gains, 0.0, 1.0)
    image = tf.image.random_brightness(image, 0.1)
    image = tf.image.random_contrast(image, 0.7, 1.3)
    image = tf.image.random_saturation(image, 0.6, 1.4)
    image = tf.image.random_hue(image, 0.03)
    image = tf.clip_by_value(image, 0.0, 1.0)
    return image ** tf.exp(_uniform(-0.35, 0.35))


def gaussian_blur(image, sigma, radius=4):
    """Separable Gaussian blur, reflecting at the borders (no dark rim)."""
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-offsets ** 2 / (2.0 * sigma ** 2))
    kernel /= tf.reduce_sum(kernel)
    padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
    across = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1])
    down = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 3, 1])
    blurred = tf.nn.depthwise_conv2d(padded, across, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, down, [1, 1, 1, 1], "VALID")[0]


def low_resolution(image):
    """A camera with fewer pixels on the lesion: down-scale, then back up."""
    size = tf.shape(image)[:2]
    scale = _uniform(0.3, 0.8)
    small = tf.cast(tf.cast(size, tf.float32) * scale, tf.int32)
    return tf.image.resize(tf.image.resize(image, small, antialias=True), size)


def sensor_noise(image):
    return tf.clip_by_value(image + tf.random.normal(tf.shape(image), 0.0, _uniform(0.004, 0.03)),
                            0.0, 1.0)


def jpeg(image):
    return tf.image.adjust_jpeg_quality(image, tf.random.uniform([], 25, 90, tf.int32))


def dermatoscope_frame(image):
    """The dark circle a contact dermatoscope leaves in the corners (soft-edged, off-centre)."""
    size = tf.cast(tf.shape(image)[0], tf.float32)
    rows = tf.range(size)[:, None] / size - 0.5 - _uniform(-0.06, 0.06)
    cols = tf.range(size)[None, :] / size - 0.5 - _uniform(-0.06, 0.06)
    radius = _uniform(0.5, 0.68)  # 0.5 touches the sides, 0.71 only the corners
    inside = tf.clip_by_value((radius - tf.sqrt(rows ** 2 + cols ** 2)) / 0.03 + 0.5, 0.0, 1.0)
    return image * inside[..., None] + _uniform(0.0, 0.1) * (1.0 - inside[..., None])


def other_clinic_layers(fill_mode):
    """The geometric part, built once (Keras layers hold their random generators)."""
    return geometry_layers(rotation=0.5, zoom=LESION_ZOOM, fill_mode=fill_mode)


def camera_optics(image):
    """Another camera's sharpness, resolution, noise and compression, each 30% of the time."""
    image = _sometimes(0.3, lambda x: gaussian_blur(x, _uniform(0.4, 1.6)), image)
    image = _sometimes(0.3, low_resolution, image)
    image = _sometimes(0.3, sensor_noise, image)
    return _sometimes(0.3, jpeg, image)


def other_clinic(image, geometry):
    """One 0-255 float crop as another clinic's camera might show it."""
    image = geometry(flips(image, square=True), training=True) / 255.0
    image = _sometimes(0.25, dermatoscope_frame, image)
    image = camera_optics(lamp(image))
    return tf.clip_by_value(image, 0.0, 1.0) * 255.0


# The two parts of `other_clinic` that are not colour, each alone on top of the basic
# recipe's mild colour jitter (per image here): the lamp alone was measured to hurt
# ("lamp"), these were only ever measured together with it.

def framing(image, geometry):
    """The lesion at any size from a fifth to nine tenths of the crop (`geometry` is
    `other_clinic_layers`) and a dermatoscope's frame 25% of the time; mild colour jitter."""
    image = geometry(flips(image, square=True), training=True) / 255.0
    image = _sometimes(0.25, dermatoscope_frame, image)
    return color_jitter(image * 255.0)


def optics(image, geometry):
    """The basic geometry and colour jitter, then another camera's optics and sensor."""
    image = color_jitter(geometry(flips(image, square=True), training=True)) / 255.0
    return tf.clip_by_value(camera_optics(image), 0.0, 1.0) * 255.0


def coarse(image, geometry):
    """optics, with most crops (70%) first given the detail of a coarser copy: a lesion crop
    from a 256 px image (ISIC 2017, isic_acral) holds far less detail than a 224 px input
    asks for, and a network that learnt fine structure from sharp crops meets blurred ones."""
    image = color_jitter(geometry(flips(image, square=True), training=True)) / 255.0
    image = _sometimes(0.7, low_resolution, image)
    return tf.clip_by_value(camera_optics(image), 0.0, 1.0) * 255.0


def lamp_only(image, geometry):
    """Another lamp and sensor only: the basic geometry, the per-image colour changes."""
    image = geometry(flips(image, square=True), training=True) / 255.0
    return tf.clip_by_value(lamp(image), 0.0, 1.0) * 255.0




PER_IMAGE_RECIPES = {"lamp": lamp_only, "other_clinic": other_clinic, "framing": framing, "optics": optics,
                     "coarse": coarse}
# The recipes whose rotations and zooms are the basic ones (their filling is --fill-mode's);
# framing and other_clinic zoom out far, and extend a masked crop's skin colour ("nearest")
# rather than mirror the lesion into the corners.
BASIC_GEOMETRY_RECIPES = ("basic", "lamp", "optics", "coarse")


def recipe_geometry(recipe, crop_mode, fill_mode):
    """The Keras layers rotating and zooming a recipe's crops (built once: they hold their
    random generators)."""
    if recipe in BASIC_GEOMETRY_RECIPES:
        return geometry_layers(rotation=0.5, zoom=0.15, fill_mode=fill_mode)
    return other_clinic_layers("nearest" if crop_mode == "masked" else "reflect")


def mixup(images, targets, weights, num_classes, alpha):
    """Each image of a batch blended with another's (mixup, Zhang et al. 2018), a share
    lambda ~ Beta(alpha, alpha) per image. targets are [one-hot | allowed classes] or
    [one-hot | allowed | teacher's probabilities]: the one-hot and teacher's parts and the
    loss weights blend by the same share, the allowed classes join (an ISIC 2017 nevus
    blended with a HAM10000 bcc may be either)."""
    partner = tf.reverse(tf.range(tf.shape(images)[0]), [0])
    first = tf.random.gamma(tf.shape(weights), alpha)
    share = first / (first + tf.random.gamma(tf.shape(weights), alpha))
    images = images * share[:, None, None, None] + tf.gather(images, partner) * (1 - share[:, None, None, None])

    def blend(part):
        return part * share[:, None] + tf.gather(part, partner) * (1 - share[:, None])

    one_hot, allowed = targets[:, :num_classes], targets[:, num_classes:2 * num_classes]
    allowed = tf.maximum(allowed, tf.gather(allowed, partner))
    weights = weights * share + tf.gather(weights, partner) * (1 - share)
    return images, tf.concat([blend(one_hot), allowed, blend(targets[:, 2 * num_classes:])], axis=1), weights


RECIPE_DESCRIPTIONS = {
    "basic": "flips, rot90, rotation, zoom +-15%, brightness/contrast/saturation/hue per batch",
    "lamp": "per image: flips, rot90, rotation, zoom +-15%; lamp: per-channel gains, brightness, "
            "contrast, saturation, hue, gamma",
    "other_clinic": "per image: flips, rot90, rotation by any angle, zoom so the lesion box fills "
                    "0.45-0.95 of the side; dermatoscope frame (25%); lamp: per-channel gains, "
                    "brightness, contrast, saturation, hue, gamma; Gaussian blur (30%), "
                    "down-then-up scaling (30%), sensor noise (30%), JPEG quality 25-90 (30%)",
    "framing": "per image: flips, rot90, rotation by any angle, zoom so the lesion box fills "
               "0.45-0.95 of the side; dermatoscope frame (25%); brightness/contrast/saturation/hue",
    "optics": "per image: flips, rot90, rotation, zoom +-15%, brightness/contrast/saturation/hue; "
              "Gaussian blur (30%), down-then-up scaling (30%), sensor noise (30%), "
              "JPEG quality 25-90 (30%)",
    "coarse": "optics, with down-then-up scaling to 30-80% of the side on 70% of crops first",
}
