"""The study runner: notebooks -> executed chapters -> the built book (``python -m ausil_lite.study``)."""
