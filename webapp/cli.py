"""Administration commands:

    flask --app app users add NAME       # asks for the password twice
    flask --app app users remove NAME
    flask --app app users list
    flask --app app purge [--days N]     # remove analyses (rows and files) older than N days
    flask --app app sweep                # remove files no analysis names (older than an hour)
    flask --app app export-confirmed DIR # images of confirmed lesions, one folder per diagnosis
    flask --app app agreement [--task T] # the model against the confirmed diagnoses, with intervals
"""
from datetime import datetime, timedelta, timezone

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from .config import settings_of

users_cli = AppGroup("users", help="Manage the accounts that may log in.")


def _users():
    return current_app.extensions["skinlesion_users"]


@users_cli.command("add")
@click.argument("name")
@click.password_option(help="at least 10 characters, not common or guessable, without the user name")
def add_user(name, password):
    try:
        _users().add(name, password)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"User {name} added.")


@users_cli.command("remove")
@click.argument("name")
def remove_user(name):
    if not _users().remove(name):
        raise click.ClickException(f"No user {name!r}.")
    click.echo(f"User {name} removed.")


@users_cli.command("list")
def list_users():
    for name in _users().names():
        click.echo(name)


def purge_older_than(engine, days, now=None):
    """Delete analyses created more than `days` days ago, with their files. Returns the count."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    old = engine.store.older_than(cutoff.isoformat(timespec="seconds"))
    for record in old:
        engine.delete(record)
    return len(old)


@click.command("purge")
@with_appcontext
@click.option("--days", type=int, default=None, help="default: SKINLESION_RETENTION_DAYS")
def purge(days):
    """Remove analyses older than the retention period, with their files."""
    days = days if days is not None else settings_of(current_app).retention_days
    if not days or days < 1:
        raise click.ClickException("Give --days N (N >= 1) or set SKINLESION_RETENTION_DAYS.")
    count = purge_older_than(current_app.extensions["skinlesion"], days)
    click.echo(f"Removed {count} analyses older than {days} days.")


@click.command("sweep")
@with_appcontext
def sweep():
    """Remove files that no analysis names, left by interrupted analyses (older than an hour)."""
    from .files import ORPHAN_GRACE_SECONDS
    engine = current_app.extensions["skinlesion"]
    count = engine.files.sweep_orphans(engine.store.all_file_names())
    click.echo(f"Removed {count} files without an analysis (older than {ORPHAN_GRACE_SECONDS // 60} minutes).")


def confirmed_visits(task=None):
    """(analysis, confirmed diagnosis) of every visit of a lesion with a confirmed diagnosis
    (all accounts: these commands are the administrator's), optionally of one classifier."""
    found = current_app.extensions["skinlesion"].patients.confirmed_visits()
    return [(record, confirmed) for record, confirmed in found if task in (None, record["task"])]


@click.command("export-confirmed")
@with_appcontext
@click.argument("folder", type=click.Path(file_okay=False))
def export_confirmed(folder):
    """Copy the images of visits whose lesion has a confirmed diagnosis into FOLDER/<code>/,
    with FOLDER/confirmed.csv: the input of `python -m training.calibrate FOLDER`."""
    import csv
    import shutil
    from pathlib import Path

    from skinlesion.classes import DISPLAY_NAMES
    engine, out, written = current_app.extensions["skinlesion"], Path(folder), 0
    with_image = []
    for record, confirmed in confirmed_visits():
        source = engine.file_path(record, "upload")
        if confirmed["diagnosis"] not in DISPLAY_NAMES or source is None or not source.is_file():
            continue  # "other" has no class to calibrate against; a purged image has no file
        target = out / confirmed["diagnosis"] / f"{record['id']}{Path(record['original_name'] or '.jpg').suffix.lower() or '.jpg'}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        with_image.append((record, confirmed, target))
        written += 1
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "confirmed.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "analysis", "lesion", "dx", "method", "confirmed_on", "task", "prediction",
                         "malignant_probability", "suspicious"])
        for record, confirmed, target in with_image:
            writer.writerow([target.relative_to(out), record["id"], record["lesion_id"], confirmed["diagnosis"],
                             confirmed["method"], confirmed["confirmed_on"], record["task"], record["prediction"],
                             f"{record['malignant_probability']:.6f}", record["suspicious"]])
    click.echo(f"Wrote {written} images of confirmed lesions to {out} (one folder per diagnosis) and "
               f"confirmed.csv. Next: python -m training.calibrate {out} --task 7class --out site.json")


@click.command("agreement")
@with_appcontext
@click.option("--task", default=None, help="one classifier's analyses (7class or 3class); default all")
@click.option("--json", "as_json", is_flag=True, help="the report as JSON")
def agreement_report(task, as_json):
    """How the model's readings agree with the confirmed diagnoses, per class, with 95% intervals."""
    import json

    from skinlesion.agreement import agreement, as_text
    report = agreement([(record["summary"], confirmed["diagnosis"]) for record, confirmed in confirmed_visits(task)])
    click.echo(json.dumps(report, indent=2) if as_json else as_text(report))


def init_app(app):
    app.cli.add_command(users_cli)
    app.cli.add_command(purge)
    app.cli.add_command(sweep)
    app.cli.add_command(export_confirmed)
    app.cli.add_command(agreement_report)
