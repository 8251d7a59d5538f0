"""The `infusions` blueprint, shared by the lifecycle routes and the charting routes."""

from flask import Blueprint

bp = Blueprint("infusions", __name__)
