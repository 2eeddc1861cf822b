"""`winnow label`: a local page to label the images `winnow query` or `winnow audit --fix` picked."""

from winnow.active.labeling.app import LabelSettings, create_app
from winnow.active.labeling.journal import Event, Journal, disagreements, replay
from winnow.active.labeling.neighbours import NearestLabelled, Neighbour
from winnow.active.labeling.queue import Item, classes_of, read_queue

__all__ = ["Event", "Item", "Journal", "LabelSettings", "NearestLabelled", "Neighbour", "classes_of", "create_app",
           "disagreements", "read_queue", "replay"]
