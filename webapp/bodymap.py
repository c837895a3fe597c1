"""The body map's figure: front and back, each region a site of skinlesion.body_sites.

The figure faces the viewer from the front, so its right side is on the viewer's left;
from the back the sides are as the viewer's. Coordinates are in the SVG's viewBox
(WIDTH x HEIGHT); a marked point is stored as fractions of it.
"""
WIDTH, HEIGHT = 100, 210

# (site, shape, geometry); sided sites come as the viewer's left and right copy.
_MIDDLE = [("neck", "rect", (44, 30, 12, 8))]
_FRONT = [("face", "circle", (50, 18, 11)), ("chest", "rect", (37, 40, 26, 26)),
          ("abdomen", "rect", (37, 66, 26, 32))]
_BACK = [("scalp", "circle", (50, 18, 11)), ("back", "rect", (37, 40, 26, 44))]
_SIDED = [("ear", "circle", (36, 19, 3)), ("shoulder", "rect", (27, 40, 10, 10)),
          ("upper_arm", "rect", (25, 50, 11, 26)), ("forearm", "rect", (22, 76, 11, 26)),
          ("hand", "rect", (19, 102, 12, 14)), ("thigh", "rect", (37, 98, 12, 44)),
          ("lower_leg", "rect", (38, 142, 10, 44)), ("foot", "rect", (36, 186, 12, 10))]
_BACK_SIDED = [("buttock", "rect", (37, 84, 13, 14))]


def _mirror(shape, geometry):
    if shape == "circle":
        x, y, r = geometry
        return (WIDTH - x, y, r)
    x, y, w, h = geometry
    return (WIDTH - x - w, y, w, h)


def regions(view):
    """[{site, laterality, shape, geometry}] of one view ("front" or "back")."""
    found = [{"site": s, "laterality": None, "shape": k, "geometry": g}
             for s, k, g in _MIDDLE + (_FRONT if view == "front" else _BACK)]
    viewer_left, viewer_right = ("right", "left") if view == "front" else ("left", "right")
    for site, shape, geometry in _SIDED + (_BACK_SIDED if view == "back" else []):
        found.append({"site": site, "laterality": viewer_left, "shape": shape, "geometry": geometry})
        found.append({"site": site, "laterality": viewer_right, "shape": shape, "geometry": _mirror(shape, geometry)})
    return found
