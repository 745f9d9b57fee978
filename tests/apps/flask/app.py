import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    greeting = os.environ.get("GREETING", "hello")
    return f"{greeting} from flask on port {os.environ.get('PORT')}\n"
