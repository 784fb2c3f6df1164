"""alignkit: measure and improve how well multilingual encoders align languages, layer by layer.

Layout (inputs -> vectors -> measurements -> results; training apart):

* inputs: ``encoders`` (any HF encoder, ``bundled`` default model), ``lexicons``, ``taskdata``
* vectors: ``extract`` (per-layer word/sentence vectors), ``cache``
* measurements: ``metrics`` (pure functions on arrays)
* results: ``results`` (tidy rows), ``scoring`` (the score pipeline), ``compare``, ``plots``
* training: ``alignkit.train``
"""
__version__ = "0.1.0"

from alignkit.errors import AlignkitError  # noqa: E402

__all__ = ["AlignkitError", "__version__"]
