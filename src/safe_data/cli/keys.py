"""``keygen``: a new age identity for encrypted backups (docs/security.md)."""

from __future__ import annotations

import os

import click

from .exits import EXIT_REFUSED, Failure


@click.command()
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="File to write the identity to (mode 0600; never overwritten).",
)
def keygen(output: str) -> None:
    """Write a new age identity to OUTPUT and print its recipient (age1...).

    Give the recipient to the hosts that push (push --recipient, or the uploader's
    recipients); keep the identity file off them: only pull needs it.  Exit 4 if OUTPUT
    exists.
    """
    from ..journal.encryption import new_identity

    secret, recipient = new_identity()
    try:
        # O_EXCL: an identity is never overwritten (the backups encrypted to it would be lost)
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Failure(f"{output} exists: an identity is never overwritten", EXIT_REFUSED) from None
    with open(fd, "w", encoding="ascii") as f:
        f.write(f"# public key: {recipient}\n{secret}\n")
        f.flush()
        os.fsync(f.fileno())
    click.echo(recipient)
