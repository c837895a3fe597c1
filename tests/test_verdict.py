"""The one verdict rule (skinlesion/verdict.py, issue 30 items 1-3): every combination of
referral flag, stored state and top class, and the places that show it."""
import itertools
import uuid

import pytest

from skinlesion.classes import DISPLAY_NAMES, MALIGNANT, TASKS
from skinlesion.verdict import CLOSE_MARGIN, verdict_of

STATES = [None, "confident", "uncertain", "unusual", "no_lesion"]


def summary(task, top, second, margin, suspicious, state):
    """A stored summary whose leading class is `top`, `margin` ahead of `second`."""
    codes = TASKS[task]
    rest = [c for c in codes if c not in (top, second)]
    first = 0.5 + margin / 2
    probabilities = {top: first, second: first - margin}
    left = 1 - sum(probabilities.values())
    probabilities |= {c: left / len(rest) for c in rest}
    ranked = sorted(({"code": c, "name": DISPLAY_NAMES[c], "probability": p, "malignant": c in MALIGNANT}
                     for c, p in probabilities.items()), key=lambda row: -row["probability"])
    reliability = None if state is None else {
        "state": state, "ood_score": 1.0, "unusual_image": state == "unusual",
        "uncertain": state == "uncertain", "message": f"{state} message",
        "reasons": [] if state == "confident" else [f"{state} reason"]}
    return {"task": task, "prediction": top, "ranked": ranked, "suspicious": suspicious,
            "malignant_probability": sum(p for c, p in probabilities.items() if c in MALIGNANT),
            "referral_threshold": 0.2, "referral_basis": None, "low_confidence": state == "uncertain",
            "reliability": reliability, "lesion": {"found": state != "no_lesion", "message": "",
                                                   "area_fraction": 0.2, "measurements": None},
            "warnings": [], "probabilities": probabilities, "image_size": {"height": 150, "width": 200},
            "models": {kind: {"name": kind, "version": "test", "sha256": "0" * 12, "card": "0" * 12}
                       for kind in ("classifier", "segmenter")}}


CASES = [(task, top, second, margin, flag, state)
         for task in TASKS for top, second in itertools.permutations(TASKS[task], 2)
         for margin in (0.02, 0.3) for flag in (False, True) for state in STATES]


@pytest.mark.parametrize("task, top, second, margin, flag, state", CASES)
def test_no_state_word_contradicts_the_headline(task, top, second, margin, flag, state):
    verdict = verdict_of(summary(task, top, second, margin, flag, state))
    if state in ("unusual", "no_lesion"):
        assert verdict.kind == "no_reading" and "no reliable reading" in verdict.headline
        assert not verdict.is_reading and verdict.state == state
        return
    if flag:  # the flag comes first, with the malignant class that raised it
        assert verdict.kind == "suspicious" and verdict.headline.startswith("Suspicious: ")
        named = verdict.code
        assert named in MALIGNANT or not any(c in MALIGNANT for c in TASKS[task])
        assert DISPLAY_NAMES[named] in verdict.headline
        if verdict.state == "confident":  # confident only in the class the headline names, when it leads
            assert named == top
    else:
        assert verdict.kind == "reading" and verdict.code == top
        assert not verdict.headline.startswith("Suspicious")
        if verdict.state == "confident":
            assert margin >= CLOSE_MARGIN  # never on a coin flip
    if state is None:
        assert verdict.state is None
    if state == "uncertain":
        assert verdict.state == "uncertain"
    if verdict.state == "uncertain":
        assert verdict.reasons


def test_the_examples_from_the_issue():
    flagged = verdict_of(summary("7class", "bkl", "mel", 0.04, True, "confident"))
    assert flagged.headline.startswith("Suspicious: Melanoma") and flagged.state == "uncertain"
    coin_flip = verdict_of(summary("7class", "bkl", "nv", 0.02, False, "confident"))
    assert coin_flip.state == "uncertain" and "close" in coin_flip.reasons[0]


# --- the places that show a result ----------------------------------------------------------

@pytest.fixture(scope="module")
def app(tiny_models, tmp_path_factory):
    from test_security import make_app
    return make_app(tiny_models, tmp_path_factory.mktemp("verdict"))


def stored_in(store, summary_):
    """Store an analysis row made from `summary_` (no files): its id."""
    from webapp.store import new_record
    record = new_record(summary_, id=uuid.uuid4().hex, files={}, original_name="x.jpg", image_sha256="0" * 64,
                        case_ref="V-1", note=None, owner=None)
    store.add(record)
    return record["id"]


def stored(app, summary_):
    return stored_in(app.extensions["skinlesion"].store, summary_)


def test_the_result_page_leads_with_the_flag_and_never_says_confident_beside_it(app):
    analysis_id = stored(app, summary("7class", "bkl", "mel", 0.04, True, "confident"))
    html = app.test_client().get(f"/analyses/{analysis_id}").data.decode()
    headline = html.split('id="verdict-headline">')[1].split("</h1>")[0]
    assert "Suspicious: " in headline and "Melanoma" in headline and "Uncertain" in headline
    assert "Confident" not in headline and "Most probable class: Benign keratosis" in html


def test_the_3class_page_names_only_its_own_malignant_classes(app):
    analysis_id = stored(app, summary("3class", "nv", "mel", 0.3, False, "confident"))
    html = app.test_client().get(f"/analyses/{analysis_id}").data.decode()
    assert "Malignant classes together (bcc, mel)" in html and "akiec" not in html


def test_history_and_compare_show_the_state_and_no_diagnosis_for_no_reading(app):
    unusual = stored(app, summary("7class", "nv", "bkl", 0.3, False, "unusual"))
    flagged = stored(app, summary("7class", "bkl", "mel", 0.04, True, "confident"))
    client = app.test_client()
    history = client.get("/history?case=V-1").data.decode()
    row = history.split(f'/analyses/{unusual}"')[1].split("</tr>")[0]
    assert "Unusual image: no reliable reading" in row and "Melanocytic nevus" not in row
    compare = client.get(f"/compare?a={unusual}&b={flagged}").data.decode()
    assert compare.count('class="reliability state-') >= 2 and "Suspicious: Melanoma" in compare
    api = client.get(f"/api/analyses/{flagged}").get_json()
    assert api["verdict"]["kind"] == "suspicious" and api["verdict"]["state"] == "uncertain"


def test_an_unreliable_outline_is_said_and_kept_out_of_the_comparison(app):
    measured = {"area_px": 1000, "max_diameter_px": 40.0, "asymmetry": 0.1, "border_irregularity": 1.3,
                "colour_count": 2, "area_fraction": 0.2, "colours": []}
    good = summary("7class", "nv", "bkl", 0.3, False, "confident")
    good["lesion"] = {"found": True, "message": "", "area_fraction": 0.2, "measurements": measured}
    bad = summary("7class", "nv", "bkl", 0.3, False, "confident")
    bad["lesion"] = {"found": True, "message": "", "area_fraction": 0.7, "measurements": measured,
                     "outline_problems": ["the outline covers 72% of the image"]}
    earlier, later = stored(app, good), stored(app, bad)
    client = app.test_client()
    page = client.get(f"/analyses/{later}").data.decode()
    assert "outline and its measurements are unreliable: the outline covers 72% of the image" in page
    assert "unreliable" not in client.get(f"/analyses/{earlier}").data.decode()
    compare = client.get(f"/compare?a={earlier}&b={later}").data.decode()
    assert "outline of one of the analyses is unreliable" in compare and 'id="malignant-change"' in compare
