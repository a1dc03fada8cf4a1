"""Restoring real photos: detect, align, restore every face in batches, paste back.

Typical use::

    from faceprior.inference import FaceRestorer, RetinaFaceDetector, load_face_model
    restorer = FaceRestorer(
        load_face_model("GFPGANv1.4"),                      # or "gpen" + weights=..., or a .ckpt
        RetinaFaceDetector("weights/facexlib", "mobile0.25"),
        upscale=2,
        device="cuda",
        dtype="bfloat16",
    )
    result = restorer.restore(rgb_uint8)                    # .image, .faces, .timings, .notes
    results = restorer.restore_batch([img_a, img_b])        # all faces through the network together

The command line is ``faceprior-restore`` (:mod:`faceprior.inference.cli`). Importing this package
loads no weights and downloads nothing.
"""

from faceprior.inference.detection import (
    Face,
    FaceDetector,
    FaceFilter,
    KnownFaces,
    RetinaFaceDetector,
)
from faceprior.inference.devices import DeviceError, resolve_device, resolve_dtype
from faceprior.inference.image_io import Photo, read_photo, write_photo
from faceprior.inference.masks import FeatherMask, MaskMaker, ParseMask
from faceprior.inference.models import (
    FaceModel,
    load_face_model,
    load_official_file,
    load_training_checkpoint,
)
from faceprior.inference.restorer import FaceRestorer, FaceResult, Restored
from faceprior.inference.settings import RestoreSettings, build_restorer
from faceprior.inference.templates import FFHQ, GPEN, TEMPLATES, FaceTemplate, get_template

__all__ = [
    "FFHQ",
    "GPEN",
    "TEMPLATES",
    "DeviceError",
    "Face",
    "FaceDetector",
    "FaceFilter",
    "FaceModel",
    "FaceRestorer",
    "FaceResult",
    "FaceTemplate",
    "FeatherMask",
    "KnownFaces",
    "MaskMaker",
    "ParseMask",
    "Photo",
    "RestoreSettings",
    "Restored",
    "RetinaFaceDetector",
    "build_restorer",
    "get_template",
    "load_face_model",
    "load_official_file",
    "load_training_checkpoint",
    "read_photo",
    "resolve_device",
    "resolve_dtype",
    "write_photo",
]
