"""tf.data augmentations. Geometry is applied to image and mask together; colour to the image."""
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


def geometry_layers(rotation, zoom):
    """Small rotations and zooms, reflecting the skin at the borders."""
    return keras.Sequential([
        keras.layers.RandomRotation(rotation, fill_mode="reflect"),
        keras.layers.RandomZoom((-zoom, zoom), fill_mode="reflect"),
    ])
