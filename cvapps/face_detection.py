"""Face detection and alignment (placeholder, filled in below)."""


class FaceDetector:
    def __init__(self, kind="haar"):
        raise ValueError("not yet")
