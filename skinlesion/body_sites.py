"""Where on the body a lesion is: the sites a clinician picks on the body map, in words and
as the SNOMED CT concepts DICOM lists for anatomic regions (CID 4031, via pydicom's code
dictionary), so that the FHIR BodyStructure and the DICOM export name the same place."""

# site -> (words, pydicom's SCT name, whether it has a side)
SITES = {
    "scalp": ("Scalp", "Scalp", False),
    "face": ("Face", "Face", False),
    "ear": ("Ear", "Ear", True),
    "neck": ("Neck", "Neck", False),
    "chest": ("Chest", "Chest", False),
    "abdomen": ("Abdomen", "Abdomen", False),
    "back": ("Back", "Back", False),
    "buttock": ("Buttock", "Buttock", True),
    "shoulder": ("Shoulder", "Shoulder", True),
    "upper_arm": ("Upper arm", "UpperArm", True),
    "forearm": ("Forearm", "Forearm", True),
    "hand": ("Hand", "Hand", True),
    "thigh": ("Thigh", "Thigh", True),
    "lower_leg": ("Lower leg", "LowerLeg", True),
    "foot": ("Foot", "Foot", True),
}
SIDES = {"left": ("Left", "Left"), "right": ("Right", "Right")}
VIEWS = ("front", "back")


def site_words(site, laterality=None):
    """'Left forearm', 'Back', or '' for no site."""
    if site not in SITES:
        return ""
    words, _, sided = SITES[site]
    if sided and laterality in SIDES:
        return f"{SIDES[laterality][0]} {words.lower()}"
    return words


def site_code(site):
    """(system, code, display) of the site's SNOMED CT concept, or None."""
    if site not in SITES:
        return None
    from pydicom.sr.codedict import codes
    concept = getattr(codes.SCT, SITES[site][1])
    return "http://snomed.info/sct", concept.value, concept.meaning


def side_code(laterality):
    if laterality not in SIDES:
        return None
    from pydicom.sr.codedict import codes
    concept = getattr(codes.SCT, SIDES[laterality][1])
    return "http://snomed.info/sct", concept.value, concept.meaning


def check_site(site, laterality, view, x, y):
    """The lesion's place as stored, or ValueError saying what is wrong."""
    if site and site not in SITES:
        raise ValueError(f"Unknown body site {site!r}.")
    if laterality and laterality not in SIDES:
        raise ValueError("The side is left or right.")
    if site and SITES[site][2] is False:
        laterality = None
    if view and view not in VIEWS:
        raise ValueError("The body map's view is front or back.")
    point = [x, y]
    if any(v is not None for v in point):
        if view is None or not all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in point):
            raise ValueError("A point on the body map needs a view and x, y between 0 and 1.")
    return {"body_site": site or None, "laterality": laterality or None, "map_view": view or None,
            "map_x": x, "map_y": y}
