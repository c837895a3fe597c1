"""Issue 33.2: one settings object, built once from the environment."""
import re

import pytest
from conftest import ROOT

from skinlesion.settings import Settings, SettingError, markdown_table


def test_the_deployment_table_is_the_settings_dataclass():
    text = (ROOT / "docs" / "deployment.md").read_text()
    table = re.search(r"<!-- settings table: python -m skinlesion.settings -->\n(.*?)\n<!-- end of settings table -->",
                      text, re.S)
    assert table, "docs/deployment.md lost its settings table markers"
    assert table.group(1) == markdown_table(), "regenerate it: python -m skinlesion.settings"


def test_every_variable_the_code_reads_is_a_setting():
    """A SKINLESION_* name anywhere in the serving code is a field of Settings (or its old name)."""
    documented = set(re.findall(r"`SKINLESION_([A-Z_]+)`", markdown_table()))
    read = set()
    for path in [*ROOT.glob("webapp/*.py"), *ROOT.glob("skinlesion/*.py"), ROOT / "app.py", ROOT / "predict.py",
                 ROOT / "gunicorn.conf.py"]:
        read |= set(re.findall(r"SKINLESION_([A-Z][A-Z_]+[A-Z])", path.read_text()))
    assert read - documented <= {"TF_THREADS"}, read - documented


def test_variables_are_read_with_their_types():
    settings = Settings.from_environment({"SKINLESION_TASKS": "3class", "SKINLESION_MAX_UPLOAD_MB": "2.5",
                                          "SKINLESION_WARM_UP": "0", "SKINLESION_DATABASE": "postgresql://u@h/db",
                                          "SKINLESION_TRUSTED_HOSTS": "a.example, b.example",
                                          "SKINLESION_PUBLIC_URL": "https://x.example/"})
    assert settings.tasks == ("3class",) and settings.max_content_length == int(2.5 * 2**20)
    assert settings.warm_up is False and settings.database_is_url and settings.database_dir is None
    assert settings.trusted_hosts == ("a.example", "b.example") and settings.public_url == "https://x.example"
    assert Settings.from_environment({}).database_dir == ROOT / "instance"


def test_the_old_thread_variable_is_still_read_and_the_new_one_wins():
    assert Settings.from_environment({"SKINLESION_TF_THREADS": "3"}).inference_threads == 3
    assert Settings.from_environment({"SKINLESION_TF_THREADS": "3",
                                      "SKINLESION_INFERENCE_THREADS": "1"}).inference_threads == 1


@pytest.mark.parametrize("variable, text", [("PORT", "eighty"), ("WARM_UP", "yes"), ("REQUIRE_LOGIN", "sometimes"),
                                            ("BOOT_FAILURE", "restart")])
def test_a_bad_value_names_its_variable(variable, text):
    with pytest.raises(SettingError, match=f"SKINLESION_{variable}"):
        Settings.from_environment({f"SKINLESION_{variable}": text})


def test_an_unknown_override_is_refused():
    with pytest.raises(TypeError, match="no such setting"):
        Settings.from_environment({}, upload_folder="x")


def test_boot_failure_has_one_default_that_gunicorn_resolves():
    """`auto`: stop for python app.py, degrade for a gunicorn worker; a said value is kept."""
    plain = Settings.from_environment({})
    assert plain.boot_failure == "auto" and not plain.degrade_on_boot_failure
    assert plain.for_gunicorn().degrade_on_boot_failure
    assert not Settings.from_environment({"SKINLESION_BOOT_FAILURE": "stop"}).for_gunicorn().degrade_on_boot_failure


def test_gunicorn_shares_the_cores_unless_threads_are_said():
    assert Settings(workers=2).for_gunicorn(cores=8).inference_threads == 4
    assert Settings(workers=4, inference_threads=1).for_gunicorn(cores=8).inference_threads == 1
    assert Settings(workers=2).for_gunicorn(cores=8).as_environment("inference_threads", "boot_failure") == [
        "SKINLESION_INFERENCE_THREADS=4", "SKINLESION_BOOT_FAILURE=degrade"]


def test_settings_cannot_be_changed_after_they_are_built():
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.require_login = "never"
    assert settings.replace(require_login="never").login_required is False
    assert settings.login_required is True
