"""The ceiling of any Flask page on this machine: a bare Flask app answering one word, served
by the same gunicorn settings as the app in the same benchmark run."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "hello"
