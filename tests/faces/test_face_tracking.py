"""Faces through the tracker: ids across frames, and a track keeps the name it was identified as."""

from cvapps.core.tracking import Tracker
from cvapps.faces.database import Identity, track_identities


def face(x, name):
    return Identity((x, 10.0, x + 40.0, 50.0), name, 0.1 if name != "unknown" else 0.9, "ada", 0.5)


def test_a_face_keeps_its_id_and_its_name_when_it_turns_away():
    tracker = Tracker()
    frames = [[face(10, "ada")], [face(12, "ada")], [face(14, "unknown")], [face(16, "unknown")]]
    tracked = [track_identities(found, tracker) for found in frames]
    assert [t[0].track_id for t in tracked][1:] == [tracked[1][0].track_id] * 3 and tracked[1][0].track_id >= 0
    assert [t[0].name for t in tracked] == ["ada", "ada", "ada", "ada"]  # identified twice, unknown twice: ada
    assert tracked[2][0].distance == 0.9  # this frame's own distance is kept
    assert tracked[3][0].to_dict()["track_id"] == tracked[1][0].track_id


def test_no_faces_is_an_empty_frame():
    assert track_identities([], Tracker()) == []
