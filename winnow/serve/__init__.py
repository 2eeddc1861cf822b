"""HTTP serving of a run: `create_app`, the model holder and batcher behind it, and `Client`."""

from winnow.serve.app import create_app
from winnow.serve.batcher import Batcher
from winnow.serve.client import Client, ServerError
from winnow.serve.holder import ModelHolder
from winnow.serve.model import ServedModel
from winnow.serve.server import BackgroundServer
from winnow.serve.settings import ServeSettings

__all__ = ["BackgroundServer", "Batcher", "Client", "ModelHolder", "ServedModel", "ServeSettings", "ServerError",
           "create_app"]
