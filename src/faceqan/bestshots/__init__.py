"""Best shots (`faceqan pick`, `faceqan.pick`): track faces through videos, frame folders and live sources, keep each person's best."""

from .output import PickWriter
from .picker import PickCounts, PickedTrack, Picker, Shot, pick, pick_source
from .sources import Frame, FrameSource, SourceError
from .tracks import Tracker, TrackingSettings

__all__ = ["Frame", "FrameSource", "PickCounts", "PickWriter", "PickedTrack", "Picker", "Shot", "SourceError", "Tracker", "TrackingSettings", "pick", "pick_source"]
