"""CLI for the monitor intake: add-device, revoke-device, mllp-listen, simulate-monitor."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import current_app

from ..errors import RuleError
from ..extensions import db
from ..models import Device
from . import mllp, services, simulator


@click.command("add-device")
@click.argument("name")
@click.option("--room", required=True, help='The room it is in, e.g. "Room 1".')
@click.option("--identifier", default="", help="Its MSH-3 identifier, for MLLP.")
def add_device_command(name, room, identifier):
    """Register a monitor and print its token (shown this once only)."""
    try:
        device, token = services.register_device(name, room, None, identifier, via="cli")
    except RuleError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(f"Registered device {device.id} “{device.name}” in {device.room}.")
    click.echo(f"Token (shown only now; send it as 'Authorization: Bearer …'):\n{token}")


@click.command("revoke-device")
@click.argument("device_id", type=int)
def revoke_device_command(device_id):
    """Revoke a monitor: its token and identifier stop working."""
    device = db.session.get(Device, device_id)
    if device is None:
        raise click.ClickException(f"There is no device {device_id}.")
    try:
        services.revoke_device(device, None, via="cli")
    except RuleError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(f"Revoked “{device.name}”.")


@click.command("mllp-listen")
@click.option("--port", default=2575, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 for every address.")
def mllp_listen_command(port, host):
    """Receive monitor messages over MLLP and answer each with its ACK (Ctrl-C stops)."""
    app = current_app._get_current_object()
    listener = mllp.Listener(app, host, port)
    click.echo(f"Listening for HL7 over MLLP on {host}:{listener.server_address[1]}.")
    try:
        listener.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped.")
    finally:
        listener.server_close()


@click.command("simulate-monitor")
@click.option("--room", required=True, help="The room whose registered monitor to play.")
@click.option("--via", type=click.Choice(["mllp", "http"]), default="mllp", show_default=True)
@click.option("--speed", default=60.0, show_default=True, help="How many times faster than life.")
@click.option("--host", default="127.0.0.1", show_default=True, help="MLLP listener host.")
@click.option("--port", default=2575, show_default=True, help="MLLP listener port.")
@click.option("--url", default="http://127.0.0.1:5000/api/hl7", show_default=True)
@click.option("--token", envvar="HL7_DEVICE_TOKEN", help="The device's token (for --via http).")
def simulate_monitor_command(room, via, speed, host, port, url, token):
    """Send a 40-minute infusion's vital signs as the room's monitor, sped up."""
    if speed <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--speed")
    device = db.session.scalar(
        sa.select(Device).where(Device.room == room, Device.active).order_by(Device.id.desc())
    )
    if via == "mllp":
        if device is None or not device.identifier:
            raise click.ClickException(
                f"No active device with an MSH-3 identifier in {room}; register one with "
                f'add-device NAME --room "{room}" --identifier ID.'
            )
        sender = f"{device.identifier}^{device.identifier}^EUI-64"

        def send(message):
            return mllp.send(host, port, [message])[0]
    else:
        if not token:
            raise click.ClickException(
                "Give the device's token with --token (or HL7_DEVICE_TOKEN)."
            )
        sender = device.identifier if device is not None and device.identifier else "SIMULATOR"

        def send(message):
            return simulator.post(url, token, message)

    db.session.remove()  # hold no database connection while waiting between messages
    click.echo(f"Simulating {simulator.INFUSION_MIN} minutes in {room} via {via}, x{speed:g}.")
    try:
        accepted = simulator.run(send, sender, speed, click.echo)
    except OSError as error:
        raise click.ClickException(f"Could not reach the {via} receiver: {error}") from error
    click.echo(f"Done: {accepted} message(s) accepted.")


COMMANDS = [
    add_device_command,
    revoke_device_command,
    mllp_listen_command,
    simulate_monitor_command,
]


def register(app) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
