"""Face verification and recognition: one-shot learning with a Siamese embedding network.

A face image goes through the shared backbone, global average pooling of P5, a dense layer and
L2 normalisation: a 128-d point on the unit sphere (FaceNet's encoding f(x)). Two faces are the
same person when the squared distance ||f(x1) - f(x2)||^2 is below a threshold (in [0, 4]),
chosen on held-out identities at training time and stored in the model's Metadata settings.
Enrolling a person is storing the encodings of one or a few photos; no retraining.

Identification (1:N) names a face as the closest enrolled person only within a stricter
threshold, ``identify_threshold`` (:class:`cvapps.faces.encoder.IdentifyThreshold`): with N
people enrolled a stranger is named when any of them is close enough, so the 1:1 threshold
would name most strangers. It is chosen for about 1 stranger in 1,000 named with 10 people
enrolled (:func:`cvapps.faces.metrics.simulate_galleries` on held-out people).

Python:

    >>> from cvapps.faces import verify
    >>> result = verify("a.jpg", "b.jpg")            # shipped "faces" model, Haar detector  # doctest: +SKIP
    >>> result.verified, round(result.distance, 3), result.threshold                          # doctest: +SKIP
    (True, 0.412, 0.709)

CLI:

    cvapps verify a.jpg b.jpg [--threshold 0.9] [--json -]
    cvapps faces enroll "Ada Lovelace" ada1.jpg ada2.jpg --db faces_db
    cvapps faces identify photo.jpg --db faces_db
    cvapps faces calibrate pairs.csv [--far 0.001]
    cvapps webcam faces --db faces_db
    cvapps train faces ../shared/data/lfw --output faces.keras
    cvapps eval faces ../shared/data/lfw --holdout 0.1 --json report.json

Colour: most face training data here is grayscale (LFW, ORL, Yale), so every face, in training
and at inference, is converted to grayscale (ITU-R 601 luma) and replicated to 3 channels
(:func:`face_pixels`).
"""

from __future__ import annotations

from cvapps.core.lazy import lazy_exports

DEFAULT_MODEL = "faces"
DEFAULT_THRESHOLD = 1.0

_EXPORTS = {
    "face_pixels": "cvapps.faces.encoder",
    "build_face_model": "cvapps.faces.encoder",
    "embed_faces": "cvapps.faces.encoder",
    "FaceEncoder": "cvapps.faces.encoder",
    "_as_image": "cvapps.faces.encoder",
    "_encoder": "cvapps.faces.encoder",
    "_named_detector": "cvapps.faces.encoder",
    "IdentifyThreshold": "cvapps.faces.encoder",
    "identify_threshold_from": "cvapps.faces.encoder",
    "sample_pairs": "cvapps.faces.metrics",
    "squared_distances": "cvapps.faces.metrics",
    "roc_curve": "cvapps.faces.metrics",
    "best_threshold": "cvapps.faces.metrics",
    "verification_metrics": "cvapps.faces.metrics",
    "pair_metrics": "cvapps.faces.metrics",
    "threshold_at_far": "cvapps.faces.metrics",
    "GallerySimulation": "cvapps.faces.metrics",
    "simulate_galleries": "cvapps.faces.metrics",
    "COMPARE": "cvapps.faces.verification",
    "Verification": "cvapps.faces.verification",
    "verify": "cvapps.faces.verification",
    "Calibration": "cvapps.faces.verification",
    "read_pairs_csv": "cvapps.faces.verification",
    "calibrate": "cvapps.faces.verification",
    "identify": "cvapps.faces.verification",
    "enroll": "cvapps.faces.verification",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, ["DEFAULT_MODEL", "DEFAULT_THRESHOLD"])
