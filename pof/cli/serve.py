"""pof serve and pof users: the web app and its accounts."""
from __future__ import annotations

from pathlib import Path

import click

from pof.cli.common import fail, friendly


@click.command()
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (keep 127.0.0.1 behind an https proxy)")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--trusted-proxies", default="", metavar="ADDRESSES",
              help="reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For "
                   "and X-Forwarded-Proto are believed; none by default")
@click.option("--limit-concurrency", default=64, show_default=True, type=click.IntRange(1),
              help="open connections at most; beyond, requests get 503")
@click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="seconds a client has to send its request line and headers")
@click.option("--body-timeout", default=30.0, show_default=True, type=click.FloatRange(0.1),
              help="seconds a request body may stall before the request gets 408")
@friendly
def serve(dataset, host, port, trusted_proxies, limit_concurrency, header_timeout, body_timeout) -> None:
    """Serve the web app for DATASET: search, review, gallery, unknown faces, audit log.

    Add accounts first with `pof users add`. Serve over https (a reverse proxy) for anything
    but a test on this machine: session cookies are marked Secure when the request is https.
    Bodies are bounded per route and read only from a signed-in client (docs/web.md, "Security")."""
    import uvicorn
    from pof.web.app import create_app
    from pof.web.auth import parse_proxies
    from pof.web.guard import Transport, header_timeout_protocol
    from pof.web.state import WebConfig
    config = WebConfig(trusted_proxies=parse_proxies(trusted_proxies))
    app = create_app(Path(dataset), config,
                     transport=Transport(body_timeout=body_timeout, header_timeout=header_timeout))
    with app.state.web.db() as db:
        if not db.execute("SELECT 1 FROM users WHERE disabled = 0").fetchone():
            click.echo(f"pof: no accounts yet; add one with `pof users add {dataset} NAME --role admin`", err=True)
    click.echo(f"pof: serving {dataset} at http://{host}:{port}/ (Ctrl-C stops)", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo("pof: listening beyond this machine: put it behind https", err=True)
    # uvicorn's own proxy handling stays off: pof reads forwarded headers from trusted proxies only
    uvicorn.run(app, host=host, port=port, proxy_headers=False,
                log_level="warning", http=header_timeout_protocol(header_timeout),
                limit_concurrency=limit_concurrency, backlog=256, timeout_keep_alive=5,
                h11_max_incomplete_event_size=16 * 2**10)


@click.group(name="users")
def users_group() -> None:
    """Accounts of the web app (roles: viewer, reviewer, admin)."""


@users_group.command(name="add")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["viewer", "reviewer", "admin"]))
@click.option("--password-file", type=click.Path(dir_okay=False, exists=True),
              help="read the password from the first line of this file (else a prompt asks)")
@click.option("--token", "with_token", is_flag=True, help="also print a new API token (shown once)")
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 3650), help="days the new API token lasts")
@click.option("--label", default="", help="what the new API token is for (shown in token lists)")
@friendly
def users_add(dataset, name, role, password_file, with_token, days, label) -> None:
    """Add user NAME to DATASET's web app (or reset their role and password: that signs them
    out everywhere and revokes their API tokens)."""
    from pof.casework import audit
    from pof.casework.accounts import Accounts
    from pof.dataset.handle import Dataset
    if password_file:
        lines = Path(password_file).read_text(encoding="utf-8").splitlines()
        password = lines[0] if lines else ""
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with Dataset.open(dataset).catalog() as cat:
        accounts = Accounts(cat.db)
        saved = accounts.add(name, role, password)
        audit.append(cat.db, "cli", "user_add" if saved.new else "user_reset", user=name, role=role,
                     sessions_ended=saved.sessions_ended, tokens_revoked=saved.tokens_revoked)
        click.echo(f"user {name} ({role}) saved in {dataset}")
        if not saved.new:
            click.echo(f"existing user reset: {saved.sessions_ended} session(s) ended, "
                       f"{saved.tokens_revoked} API token(s) revoked")
        _print_team(cat.db)
        if with_token:
            _new_token(cat.db, accounts, name, days, label)


def _print_team(db) -> None:
    """How many reviewers a confirmation needs on this dataset, and a warning (on stderr)
    when its reviewer and admin accounts are too few to confirm anything."""
    from pof.casework import review
    review.ensure_schema(db)
    need = review.min_reviewers(db)
    click.echo(f"confirming a proposed name needs {need} reviewer{'' if need == 1 else 's'} besides "
               f"the proposer ({need + 1} reviewer or admin accounts in all; an admin changes "
               "this on the admin page)")
    warning = review.team_check(db)
    if warning:
        click.echo(f"pof: warning: {warning}", err=True)


def _new_token(db, accounts, name: str, days: int, label: str) -> None:
    """Make an API token, audit it, print its id and expiry (stderr) and the token (stdout)."""
    from pof.casework import audit
    token = accounts.new_token(name, days, label)
    row = accounts.token_row(token)
    audit.append(db, "cli", "token_add", user=name, token_id=row["id"], label=row["label"], expires=row["expires"])
    click.echo(f"API token {row['id']} for {name}, expires {row['expires']} (shown once):", err=True)
    click.echo(token)


@users_group.command(name="tokens")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.argument("name", required=False)
@click.option("--revoke", "revoke_id", metavar="ID", help="revoke the API token with this id")
@click.option("--new", "make_new", is_flag=True, help="make a new API token for NAME (shown once)")
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 3650), help="days a new token lasts")
@click.option("--label", default="", help="what a new token is for")
@friendly
def users_tokens(dataset, name, revoke_id, make_new, days, label) -> None:
    """List the API tokens of DATASET's web app (of user NAME only, if given): id, user, label,
    created, expires, last used, state. --revoke ID revokes one; --new makes one for NAME."""
    from pof.casework import audit
    from pof.casework.accounts import Accounts
    from pof.dataset.handle import Dataset
    if revoke_id and make_new:
        fail("give either --revoke or --new")
    with Dataset.open(dataset).catalog() as cat:
        accounts = Accounts(cat.db)
        if revoke_id:
            row = accounts.revoke_token(revoke_id)
            audit.append(cat.db, "cli", "token_revoke", user=row["user"], token_id=row["id"])
            click.echo(f"API token {row['id']} of {row['user']} revoked"
                       + (" (it already was)" if row["revoked"] else ""))
            return
        if make_new:
            if not name:
                fail("--new needs the user NAME")
            _new_token(cat.db, accounts, name, days, label)
            return
        rows = accounts.tokens(name)
        click.echo("id\tuser\tlabel\tcreated\texpires\tlast used\tstate")
        for t in rows:
            state = "revoked" if t["revoked"] else "expired" if t["expired"] else "active"
            click.echo("\t".join([t["id"], t["user"], t["label"] or "-", t["created"], t["expires"],
                                  t["last_used"] or "never", state]))


@users_group.command(name="list")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@friendly
def users_list(dataset) -> None:
    """List the users of DATASET's web app."""
    from pof.casework.accounts import Accounts
    from pof.dataset.handle import Dataset
    with Dataset.open(dataset).catalog() as cat:
        for u in Accounts(cat.db).list():
            click.echo(f"{u['name']}\t{u['role']}\t{'disabled' if u['disabled'] else 'active'}\t{u['created']}")


@users_group.command(name="disable")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.argument("name")
@friendly
def users_disable(dataset, name) -> None:
    """Disable user NAME (kept for the record), revoking their tokens and sessions."""
    from pof.casework import audit
    from pof.casework.accounts import Accounts
    from pof.dataset.handle import Dataset
    with Dataset.open(dataset).catalog() as cat:
        Accounts(cat.db).disable(name)
        audit.append(cat.db, "cli", "user_disable", user=name)
    click.echo(f"user {name} disabled")
