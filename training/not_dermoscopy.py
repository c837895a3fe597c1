"""A varied set of images that are not dermoscopy, made here from what packages ship.

    python -m training.not_dermoscopy --out runs/not_dermoscopy [--per-kind 12]

Kinds (each a folder, for leave-one-kind-out measurement): documents (rendered text
pages and scikit-image's scanned page), flat (flat and gradient colour fields, skin tones
among them), photos (cat, portrait, people, objects), textures (brick, grass, gravel, noise),
medical (fundus, histology, cells, microscopy, CT phantom: other imaging, not skin),
graphics (charts, colour wheel, logo, checkerboard), grayscale (any of the above photos
as a grey picture, as an X-ray or OCT scan is). Sources: scikit-image's bundled sample
images (BSD-3 licence; their own licences listed in skimage/data/README), scikit-learn's two
sample photos, and images drawn here. Varied by random crops, flips, scales and JPEG.
"""
import argparse
import io
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KINDS = ("documents", "flat", "photos", "textures", "medical", "graphics", "grayscale")

# scikit-image sample images by kind (all bundled with the package: no download).
SKIMAGE_IMAGES = {
    "documents": ("page", "text"),
    "photos": ("astronaut", "chelsea", "cat", "coffee", "rocket", "hubble_deep_field"),
    "textures": ("brick", "grass", "gravel"),
    "medical": ("retina", "immunohistochemistry", "cell", "microaneurysms", "shepp_logan_phantom"),
    "graphics": ("colorwheel", "logo", "checkerboard", "horse"),
    "grayscale": ("camera", "coins", "moon", "clock"),
}


def _rgb(image):
    """Any sample image (bool, grey, float, RGBA) as RGB uint8."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        image = (255 * (image - image.min()) / max(float(image.max() - image.min()), 1e-9)).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    return np.ascontiguousarray(image[..., :3])


def skimage_image(name):
    import skimage.data
    return _rgb(getattr(skimage.data, name)())


def sklearn_photos():
    from sklearn.datasets import load_sample_images
    return [_rgb(image) for image in load_sample_images().images]


def text_page(rng, height=600, width=450):
    """A document: lines of random words on paper-coloured ground."""
    from PIL import Image, ImageDraw, ImageFont
    paper = tuple(int(v) for v in rng.integers(225, 256, 3))
    page = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=int(rng.integers(11, 22)))
    letters = "abcdefghijklmnopqrstuvwxyz"
    y = int(rng.integers(10, 40))
    while y < height - 20:
        words = ["".join(rng.choice(list(letters), rng.integers(2, 10))) for _ in range(rng.integers(3, 12))]
        draw.text((int(rng.integers(10, 40)), y), " ".join(words), fill=tuple(int(v) for v in rng.integers(0, 70, 3)),
                  font=font)
        y += int(rng.integers(16, 34))
    return np.asarray(page)


def flat_field(rng, size=300):
    """A flat or gently graded colour field (skin tones half the time)."""
    if rng.random() < 0.5:
        colour = np.array([rng.uniform(170, 240), rng.uniform(120, 190), rng.uniform(100, 170)])
    else:
        colour = rng.uniform(0, 255, 3)
    ramp = np.linspace(-1, 1, size)[None, :, None] * rng.uniform(0, 30, 3) * (rng.random() < 0.5)
    image = colour + ramp + rng.normal(0, rng.uniform(0, 4), (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def noise_texture(rng, size=300):
    import cv2
    noise = rng.normal(128, 60, (size // 4, size // 4, 3)).astype(np.float32)
    return np.clip(cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def chart(rng):
    """A matplotlib plot: lines or bars with axes and labels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(4, 3), dpi=80)
    if rng.random() < 0.5:
        for _ in range(rng.integers(1, 4)):
            axes.plot(np.cumsum(rng.normal(size=30)))
    else:
        axes.bar(range(6), rng.uniform(1, 10, 6), color=plt.cm.tab10(rng.integers(0, 10)))
    axes.set(title="measurement", xlabel="time", ylabel="value")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def vary(image, rng, min_side=120):
    """A random crop (a third of the side or more), flip and rescale of `image`."""
    import cv2
    height, width = image.shape[:2]
    scale = rng.uniform(0.35, 1.0)
    crop_h, crop_w = max(int(height * scale), min(min_side, height)), max(int(width * scale), min(min_side, width))
    top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
    image = image[top:top + crop_h, left:left + crop_w]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    target = rng.uniform(200, 500) / max(image.shape[:2])
    size = (max(int(image.shape[1] * target), 64), max(int(image.shape[0] * target), 64))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def generate(per_kind=12, seed=0):
    """{kind: [RGB uint8 images]}: `per_kind` images of every kind."""
    rng = np.random.default_rng(seed)
    bases = {kind: [skimage_image(name) for name in names] for kind, names in SKIMAGE_IMAGES.items()}
    bases["photos"] += sklearn_photos()
    makers = {"documents": lambda: text_page(rng), "flat": lambda: flat_field(rng),
              "textures": lambda: noise_texture(rng), "graphics": lambda: chart(rng)}
    grey_sources = bases["photos"] + bases["grayscale"]
    images = {}
    for kind in KINDS:
        found = []
        for index in range(per_kind):
            if kind == "flat":
                found.append(flat_field(rng))
            elif kind == "grayscale":
                source = vary(grey_sources[index % len(grey_sources)], rng)
                found.append(np.repeat(source.mean(-1, keepdims=True), 3, -1).astype(np.uint8))
            elif kind in makers and index % 3 == 2:  # a third drawn here, the rest from packages
                found.append(vary(makers[kind](), rng))
            else:
                found.append(vary(bases[kind][index % len(bases[kind])], rng))
        images[kind] = found
    return images


def write(images, out):
    """Save as JPEG files out/<kind>/<kind>_<n>.jpg; returns the paths."""
    from PIL import Image
    paths = []
    for kind, found in images.items():
        (Path(out) / kind).mkdir(parents=True, exist_ok=True)
        for number, image in enumerate(found):
            path = Path(out) / kind / f"{kind}_{number:03d}.jpg"
            Image.fromarray(image).save(path, quality=90)
            paths.append(path)
    return paths


def read(folder):
    """{kind: [paths]} of a folder written by `write` (or any folder of kind folders)."""
    return {kind.name: sorted(p for p in kind.iterdir() if p.is_file())
            for kind in sorted(Path(folder).iterdir()) if kind.is_dir()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/not_dermoscopy")
    p.add_argument("--per-kind", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    paths = write(generate(args.per_kind, args.seed), args.out)
    print(f"wrote {len(paths)} images of {len(KINDS)} kinds to {args.out}")


if __name__ == "__main__":
    main()
