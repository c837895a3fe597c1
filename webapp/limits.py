"""Work per account: analyses and PDF reports per minute, counted in the database that
every worker and host shares, so the limit holds however requests are spread.

A fixed one-minute window per (account, kind), in one upsert that only counts when the
request fits (the login throttle's pattern, auth.Users.begin_attempt): concurrent requests
on any host cannot slip past it. Without accounts (the loopback workstation, or
SKINLESION_REQUIRE_LOGIN=never) there is nobody to count and nothing is limited.
"""
import time

from flask import current_app
from sqlalchemy import case, or_, select

from . import db
from .auth import current_owner, upsert
from .config import settings_of

WINDOW_SECONDS = 60
KINDS = {"analyses": "analyses_per_minute", "reports": "reports_per_minute"}  # kind -> its setting


class TooMuchWork(Exception):
    """HTTP 429; str(error) says the limit, retry_after the seconds until the window ends."""

    def __init__(self, message, retry_after):
        super().__init__(message)
        self.retry_after = retry_after


def take(engine, account, kind, amount, limit, now=None):
    """Count `amount` units of `kind` for `account` if they fit in this window's `limit`,
    else raise TooMuchWork. One statement decides and counts."""
    now = time.time() if now is None else now
    noun = "analyses" if kind == "analyses" else "PDF reports"
    if amount > limit:
        raise TooMuchWork(f"{amount} {noun} in one request; an account may ask for at most {limit} "
                          "a minute. Send fewer at once.", WINDOW_SECONDS)
    counts = db.work_counts
    expired = now - counts.c.window_start >= WINDOW_SECONDS
    statement = (upsert(engine)(counts).values(key=f"{account}|{kind}", count=amount, window_start=now)
                 .on_conflict_do_update(
                     index_elements=[counts.c.key],
                     set_={"count": case((expired, amount), else_=counts.c.count + amount),
                           "window_start": case((expired, now), else_=counts.c.window_start)},
                     where=or_(expired, counts.c.count + amount <= limit))
                 .returning(counts.c.count))
    with engine.begin() as connection:
        if connection.execute(statement).first() is not None:
            return
        start = connection.execute(select(counts.c.window_start).where(counts.c.key == f"{account}|{kind}")).scalar()
    wait = max(1, int(start + WINDOW_SECONDS - now + 0.999))
    raise TooMuchWork(f"This account has asked for its {limit} {noun} of this minute; "
                      f"try again in {wait} seconds.", wait)


def take_for_request(kind, amount=1):
    """take() for the logged-in account with the configured limit (0 or no accounts: none)."""
    limit = getattr(settings_of(current_app), KINDS[kind])
    account = current_owner()
    if limit and account is not None:
        take(current_app.extensions["skinlesion"].store.engine, account, kind, amount, limit)

