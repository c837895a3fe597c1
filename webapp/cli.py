"""Administration commands:

    flask --app app users add NAME       # asks for the password twice
    flask --app app users remove NAME
    flask --app app users list
    flask --app app purge [--days N]     # remove analyses (rows and files) older than N days
    flask --app app sweep                # remove files no analysis names (older than an hour)
"""
from datetime import datetime, timedelta, timezone

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

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
    days = days if days is not None else current_app.config["RETENTION_DAYS"]
    if not days or days < 1:
        raise click.ClickException("Give --days N (N >= 1) or set SKINLESION_RETENTION_DAYS.")
    count = purge_older_than(current_app.extensions["skinlesion"], days)
    click.echo(f"Removed {count} analyses older than {days} days.")


@click.command("sweep")
@with_appcontext
def sweep():
    """Remove files that no analysis names, left by interrupted analyses (older than an hour)."""
    from .store import ORPHAN_GRACE_SECONDS, sweep_orphans
    config = current_app.config
    count = sweep_orphans(current_app.extensions["skinlesion"].store, (config["UPLOAD_DIR"], config["HEATMAP_DIR"]))
    click.echo(f"Removed {count} files without an analysis (older than {ORPHAN_GRACE_SECONDS // 60} minutes).")


def init_app(app):
    app.cli.add_command(users_cli)
    app.cli.add_command(purge)
    app.cli.add_command(sweep)
