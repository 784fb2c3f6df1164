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

__all__ = ["AlignkitError", "__version__", "score", "compare_runs", "load_encoder", "word_vectors",
           "sentence_vectors", "load_lexicon", "run_study"]


def __getattr__(name: str):
    """Lazy top-level API (importing alignkit stays cheap: no torch until needed)."""
    lazy = {
        "score": ("alignkit.scoring", "score"),
        "compare_runs": ("alignkit.results.compare", "compare_runs"),
        "load_encoder": ("alignkit.inputs.encoders", "load_encoder"),
        "word_vectors": ("alignkit.vectors.extract", "word_vectors"),
        "sentence_vectors": ("alignkit.vectors.extract", "sentence_vectors"),
        "load_lexicon": ("alignkit.inputs.lexicons", "load_lexicon"),
        "run_study": ("alignkit.study", "run_study"),
    }
    if name in lazy:
        import importlib

        mod, attr = lazy[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'alignkit' has no attribute {name!r}")
